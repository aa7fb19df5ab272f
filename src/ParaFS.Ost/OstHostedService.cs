using Microsoft.Extensions.Hosting;

namespace ParaFS.Ost;

/// <summary>Runs an <see cref="OstServer"/> with a host: started with it, stopped with it.</summary>
public sealed class OstHostedService(OstServer server) : IHostedService
{
    public OstServer Server { get; } = server;

    public Task StartAsync(CancellationToken cancellationToken) => Server.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Server.StopAsync();
}
