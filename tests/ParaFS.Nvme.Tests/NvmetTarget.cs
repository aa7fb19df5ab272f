namespace ParaFS.Nvme.Tests;

/// <summary>
/// The real target the tests use: Linux nvmet in a qemu guest (scripts/nvmet), named by
/// PARAFS_TEST_NVMET="HOST:PORT/SUBSYSTEM-NQN". scripts/test starts it and sets the variable;
/// PARAFS_TEST_NVMET_SKIP says why it could not (shown as the skip reason).
/// </summary>
public static class NvmetTarget
{
    public const string Variable = "PARAFS_TEST_NVMET";

    public static string? Value => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value ? value : null;

    public static string SkipReason =>
        Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET_SKIP") is { Length: > 0 } why
            ? $"no NVMe/TCP target: {why}"
            : $"no NVMe/TCP target: {Variable} is not set (scripts/nvmet start prints the value; scripts/test starts the target and sets it)";

    public static string Host => Parts().Host;

    public static int Port => Parts().Port;

    public static string Nqn => Parts().Nqn;

    /// <summary>The namespace URL with extra options, e.g. Url("digest=both&amp;queues=4").</summary>
    public static string Url(string? query = null) =>
        $"nvme-tcp://{Host}:{Port}/{Nqn}/1" + (string.IsNullOrEmpty(query) ? "" : "?" + query);

    private static (string Host, int Port, string Nqn) Parts()
    {
        var value = Value ?? throw new InvalidOperationException(SkipReason);
        var slash = value.IndexOf('/');
        var authority = value[..slash];
        var colon = authority.LastIndexOf(':');
        return (authority[..colon], int.Parse(authority[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), value[(slash + 1)..]);
    }
}

/// <summary>A test against the real qemu nvmet target; skips with the reason when there is none.</summary>
public sealed class NvmetFactAttribute : FactAttribute
{
    public NvmetFactAttribute()
    {
        if (NvmetTarget.Value is null)
        {
            Skip = NvmetTarget.SkipReason;
        }
    }
}

/// <summary>A theory against the real qemu nvmet target; skips with the reason when there is none.</summary>
public sealed class NvmetTheoryAttribute : TheoryAttribute
{
    public NvmetTheoryAttribute()
    {
        if (NvmetTarget.Value is null)
        {
            Skip = NvmetTarget.SkipReason;
        }
    }
}

/// <summary>The target tests share one emulated guest: run them one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NvmetCollection
{
    public const string Name = "nvmet";
}
