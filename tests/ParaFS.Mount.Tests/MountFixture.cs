namespace ParaFS.Mount.Tests;

/// <summary>One `parafs up` (4 targets) shared by a test class; nothing when mounting is impossible here.</summary>
public sealed class MountFixture : IAsyncLifetime
{
    public ParafsUp Up { get; private set; } = null!;

    public string Mnt => Up.MountPoint;

    public async Task InitializeAsync()
    {
        if (File.Exists("/dev/fuse") && Environment.UserName == "root")
        {
            Up = await ParafsUp.StartAsync();
        }
    }

    public async Task DisposeAsync()
    {
        if (Up is not null)
        {
            await Up.DisposeAsync();
        }
    }
}
