using ParaFS.Bench;

return args switch
{
    ["rpc", .. var rest] => await RpcBench.RunAsync(rest),
    ["ost", .. var rest] => await OstBench.RunAsync(rest),
    ["mds", .. var rest] => await MdsBench.RunAsync(rest),
    ["client", .. var rest] => await ClientBench.RunAsync(rest),
    ["nvme", .. var rest] => await NvmeBench.RunAsync(rest),
    ["nvme-null-target", .. var rest] => await NvmeNullTarget.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ParaFS.Bench rpc [--seconds N] | ost [--dir DIR] [--mib N] | mds [--files N] [--callers N] [--dir DIR] | client [--mib N] [--in-flight N] [--read-kib N] [--dir DIR] | nvme --target HOST:PORT/NQN | --null-target [--seconds N] [--options QUERY]");
    return 2;
}
