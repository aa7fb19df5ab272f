using FsCheck;
using Microsoft.FSharp.Core;

namespace ParaFS.Testing;

/// <summary>
/// Runs an FsCheck property from a plain xunit fact. On failure FsCheck's message carries the
/// seed; set PARAFS_REPLAY="seed,gamma" to run exactly that case again.
/// </summary>
public static class PropertyCheck
{
    public static void Run(Property property, int maxTests = 100)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(maxTests).WithQuietOnSuccess(true);
        if (Environment.GetEnvironmentVariable("PARAFS_REPLAY") is { Length: > 0 } replay)
        {
            var parts = replay.Trim('(', ')', ' ').Split(',', StringSplitOptions.TrimEntries);
            var rnd = new Rnd(ulong.Parse(parts[0]), ulong.Parse(parts[1]));
            config = config.WithReplay(FSharpOption<Replay>.Some(new Replay(rnd, FSharpOption<int>.None)));
        }

        property.Check(config);
    }
}
