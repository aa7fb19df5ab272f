using ParaFS.Bench;

return args switch
{
    ["rpc", .. var rest] => await RpcBench.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ParaFS.Bench rpc [--seconds N]");
    return 2;
}
