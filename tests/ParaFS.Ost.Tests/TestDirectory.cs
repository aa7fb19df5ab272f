namespace ParaFS.Ost.Tests;

/// <summary>A fresh directory under the system's temp directory, removed with everything in it.</summary>
public sealed class TestDirectory : IDisposable
{
    public TestDirectory(string? parent = null)
    {
        Path = System.IO.Path.Combine(parent ?? System.IO.Path.GetTempPath(), $"parafs-ost-{Guid.NewGuid():n}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A mount point or a file still open by a dying child: leave it for the OS's temp cleanup.
        }
    }
}
