using ParaFS.Cli;

// parafs VERB ...: the daemons (mds, ost) and, later, the mount and the lfs-style tools.
return args switch
{
    ["up", .. var rest] => await UpCommand.RunAsync(rest),
    ["mount", .. var rest] => await MountCommand.MountAsync(rest),
    ["umount", .. var rest] => MountCommand.Unmount(rest),
    ["mds", .. var rest] => await MdsCommand.RunAsync(rest),
    ["ost", .. var rest] => await OstCommand.RunAsync(rest),
    ["setstripe", .. var rest] => await ParaFS.Cli.Tools.StripeCommands.SetAsync(rest),
    ["getstripe", .. var rest] => await ParaFS.Cli.Tools.StripeCommands.GetAsync(rest),
    ["df", .. var rest] => await ParaFS.Cli.Tools.TargetCommands.DfAsync(rest),
    ["targets", .. var rest] => await ParaFS.Cli.Tools.TargetCommands.TargetsAsync(rest),
    ["find", .. var rest] => await ParaFS.Cli.Tools.FindCommand.RunAsync(rest),
    ["migrate", .. var rest] => await ParaFS.Cli.Tools.MigrateCommand.RunAsync(rest),
    ["drain", .. var rest] => await ParaFS.Cli.Tools.DrainCommand.RunAsync(rest),
    ["fsck", .. var rest] => await ParaFS.Cli.Tools.FsckCommand.RunAsync(rest),
    ["--version"] => Version(),
    _ => Usage.Print(args),
};

static int Version()
{
    Console.WriteLine($"parafs {typeof(Usage).Assembly.GetName().Version} (protocol {ParaFS.Protocol.ProtocolVersion.Current})");
    return 0;
}
