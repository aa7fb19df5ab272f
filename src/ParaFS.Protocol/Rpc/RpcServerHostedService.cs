using Microsoft.Extensions.Hosting;

namespace ParaFS.Protocol.Rpc;

/// <summary>Runs an <see cref="RpcServer"/> as a hosted service: started with the host, stopped with it.</summary>
public sealed class RpcServerHostedService(RpcServer server) : IHostedService
{
    public RpcServer Server { get; } = server;

    public Task StartAsync(CancellationToken cancellationToken) => Server.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Server.StopAsync();
}
