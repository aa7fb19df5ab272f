namespace ParaFS.Cli;

/// <summary>parafs ost: being written (issue 3).</summary>
internal static class OstCommand
{
    public static Task<int> RunAsync(string[] args)
    {
        _ = args;
        Console.Error.WriteLine("parafs ost: not built yet");
        return Task.FromResult(1);
    }
}
