namespace ParaFS.Testing;

/// <summary>Polls for a condition: tests on a loaded machine wait for what they expect, never a fixed time.</summary>
public static class Eventually
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Patience);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {(timeout ?? Patience).TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(25);
        }
    }

    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Patience);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {(timeout ?? Patience).TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(25);
        }
    }
}
