namespace ParaFS.Cli;

/// <summary>parafs mds: being written (issue 4).</summary>
internal static class MdsCommand
{
    public static Task<int> RunAsync(string[] args)
    {
        _ = args;
        Console.Error.WriteLine("parafs mds: not built yet");
        return Task.FromResult(1);
    }
}
