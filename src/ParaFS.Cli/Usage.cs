namespace ParaFS.Cli;

internal static class Usage
{
    public const string Text = """
        usage: parafs VERB [options]

        on one machine:
          up         an embedded cluster (MDS + OSTs) mounted at ./mnt, in the foreground

        daemons, for deployments over many machines:
          mds        the metadata server:        (--data DIR | --store POSTGRES) --listen HOST:PORT [--fsname NAME]
          ost        an object storage target:   --data DIR --listen HOST:PORT --mds HOST:PORT[,HOST:PORT] --pool NAME
          mount      a client mount:             MDS_HOST:PORT[,HOST:PORT] MOUNTPOINT [-o OPTIONS] [-d]
          umount     unmount (also a mount whose daemon died): MOUNTPOINT

        tools (from any path in a mount, like Lustre's lfs):
          setstripe  [-c COUNT] [-S SIZE] [-p POOL] PATH
          getstripe  [--json] PATH...
          df         [-h] [--json] [PATH]
          targets    [--json] [PATH]
          find       PATH [--pool POOL] [--target N]
          migrate    [-p POOL] [-c COUNT] [-S SIZE] [-r] [--throttle MB/s] [--json] PATH...   (online)
          drain      TARGET [-p POOL] [--throttle MB/s] [--json]                               (online)
          fsck       [--repair] [--json] [PATH]: objects no file refers to, and files on lost targets (online)

        Run `parafs VERB --help` for a verb's options.
        """;

    public static int Print(string[] args)
    {
        var asked = args is [] or ["--help"] or ["-h"] or ["help"];
        (asked ? Console.Out : Console.Error).WriteLine(asked ? Text : $"parafs: unknown verb '{args[0]}'\n\n{Text}");
        return asked ? 0 : 2;
    }
}
