namespace ParaFS.Fuse.Tests;

/// <summary>
/// A test that mounts through the kernel. It runs where /dev/fuse exists and the process is
/// root (mount(2) needs CAP_SYS_ADMIN), and is skipped with the reason everywhere else.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class FuseFactAttribute : FactAttribute
{
    public FuseFactAttribute()
    {
        if (WhyNot() is { } reason)
        {
            Skip = reason;
        }
    }

    public static string? WhyNot()
    {
        if (!File.Exists("/dev/fuse"))
        {
            return "kernel FUSE tests skipped: /dev/fuse does not exist (load the fuse module or pass the device to the container)";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "kernel FUSE tests skipped: not running as root (mount(2) needs CAP_SYS_ADMIN)";
        }

        return null;
    }
}

/// <summary>A <see cref="FuseFactAttribute"/> test that also needs fusermount3 (apt-get install fuse3).</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class FusermountFactAttribute : FactAttribute
{
    public FusermountFactAttribute()
    {
        var reason = FuseFactAttribute.WhyNot();
        if (reason is null && !(Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "fusermount3"))))
        {
            reason = "fusermount3 test skipped: fusermount3 is not installed (apt-get install fuse3)";
        }

        if (reason is not null)
        {
            Skip = reason;
        }
    }
}
