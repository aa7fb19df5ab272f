using ParaFS.Bench;

return args switch
{
    ["rpc", .. var rest] => await RpcBench.RunAsync(rest),
    ["ost", .. var rest] => await OstBench.RunAsync(rest),
    ["mds", .. var rest] => await MdsBench.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ParaFS.Bench rpc [--seconds N] | ost [--dir DIR] [--mib N] | mds [--files N] [--callers N] [--dir DIR]");
    return 2;
}
