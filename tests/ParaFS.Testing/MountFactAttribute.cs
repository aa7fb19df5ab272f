using Xunit;

namespace ParaFS.Testing;

/// <summary>A test that mounts through the real kernel FUSE: it needs root and /dev/fuse (CI has both) and says so when it skips.</summary>
public sealed class MountFactAttribute : FactAttribute
{
    public MountFactAttribute()
    {
        if (!File.Exists("/dev/fuse"))
        {
            Skip = "needs /dev/fuse (the kernel's FUSE device); CI has it";
        }
        else if (Environment.UserName != "root")
        {
            Skip = $"needs root to mount (running as {Environment.UserName}); CI runs as root";
        }
    }

    /// <summary>The test also needs PostgreSQL (scripts/test installs it and sets PARAFS_TEST_PG).</summary>
    public bool NeedsPostgres
    {
        get => TestPostgres.SkipReason is null;
        init
        {
            if (value && Skip is null && TestPostgres.SkipReason is { } reason)
            {
                Skip = reason;
            }
        }
    }
}
