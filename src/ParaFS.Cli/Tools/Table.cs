namespace ParaFS.Cli.Tools;

/// <summary>An aligned text table for people (scripts use --json).</summary>
internal sealed class Table(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells) => _rows.Add(cells);

    public void Write(TextWriter output)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, _rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max())).ToArray();
        output.WriteLine(Line(headers, widths));
        foreach (var row in _rows)
        {
            output.WriteLine(Line(row, widths));
        }
    }

    /// <summary>Numbers right-aligned, words left-aligned.</summary>
    private static string Line(string[] cells, int[] widths) => string.Join("  ", cells.Select((c, i) =>
        c.Length > 0 && (char.IsDigit(c[0]) || c[0] == '-') && c.All(ch => char.IsDigit(ch) || ch is '.' or '%' or ',' or 'B' or 'K' or 'M' or 'G' or 'T' or 'P' or '-')
            ? c.PadLeft(widths[i])
            : c.PadRight(widths[i]))).TrimEnd();
}
