using System.Globalization;

namespace ParaFS.Cli.Tools;

/// <summary>Sizes as people write them (4K, 1M, 2G; powers of 1024) and read them (-h).</summary>
internal static class Sizes
{
    public static long Parse(string text, string what)
    {
        var t = text.Trim();
        var multiplier = char.ToUpperInvariant(t.Length > 0 ? t[^1] : ' ') switch
        {
            'K' => 1L << 10,
            'M' => 1L << 20,
            'G' => 1L << 30,
            'T' => 1L << 40,
            _ => 1L,
        };
        var digits = multiplier == 1 ? t : t[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            throw new UsageException($"{what}: '{text}' is not a size (examples: 65536, 64K, 1M, 4M)");
        }

        return checked(value * multiplier);
    }

    public static string Human(long bytes)
    {
        string[] units = ["B", "K", "M", "G", "T", "P"];
        double v = bytes;
        var u = 0;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }

        return u == 0 ? $"{bytes}B" : v.ToString(v < 10 ? "0.0" : "0", CultureInfo.InvariantCulture) + units[u];
    }
}
