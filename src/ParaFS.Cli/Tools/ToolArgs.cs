namespace ParaFS.Cli.Tools;

/// <summary>The options of a tool verb: flags with values (-c 4), switches (--json) and positional paths.</summary>
internal sealed class ToolArgs
{
    private readonly Dictionary<string, string> _values = [];
    private readonly HashSet<string> _switches = [];

    public ToolArgs(string verb, string[] args, IReadOnlyCollection<string> valued, IReadOnlyCollection<string> switches)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (valued.Contains(a))
            {
                if (i + 1 >= args.Length)
                {
                    throw new UsageException($"parafs {verb}: {a} needs a value");
                }

                _values[a] = args[++i];
            }
            else if (switches.Contains(a))
            {
                _switches.Add(a);
            }
            else if (a.StartsWith('-') && a.Length > 1)
            {
                throw new UsageException($"parafs {verb}: unknown option {a}; see parafs {verb} --help");
            }
            else
            {
                Paths.Add(a);
            }
        }
    }

    public List<string> Paths { get; } = [];

    public string? Value(params string[] names) => names.Select(n => _values.GetValueOrDefault(n)).FirstOrDefault(v => v is not null);

    public bool Has(params string[] names) => names.Any(_switches.Contains);
}
