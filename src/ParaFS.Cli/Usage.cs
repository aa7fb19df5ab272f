namespace ParaFS.Cli;

internal static class Usage
{
    public const string Text = """
        usage: parafs VERB [options]

        daemons:
          mds    --data DIR --listen HOST:PORT [--fsname NAME]       run the metadata server
          ost    --data DIR --listen HOST:PORT --mds HOST:PORT --pool NAME
                                                                 run an object storage target

        Run `parafs VERB --help` for a verb's options.
        """;

    public static int Print(string[] args)
    {
        var asked = args is [] or ["--help"] or ["-h"] or ["help"];
        (asked ? Console.Out : Console.Error).WriteLine(asked ? Text : $"parafs: unknown verb '{args[0]}'\n\n{Text}");
        return asked ? 0 : 2;
    }
}
