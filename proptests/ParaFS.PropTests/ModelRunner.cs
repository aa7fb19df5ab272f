using System.Text;
using ParaFS.Common;

namespace ParaFS.PropTests;

/// <summary>Runs an operation sequence against a system and the model side by side, step by step.</summary>
public static class ModelRunner
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long[]> Counts = new();

    /// <summary>Sequences run and operations applied under a label (one per system under test), for the suite's report.</summary>
    public static (long Sequences, long Operations) Totals(string label) =>
        Counts.TryGetValue(label, out var c) ? (Interlocked.Read(ref c[0]), Interlocked.Read(ref c[1])) : (0, 0);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> Succeeded = new();

    /// <summary>Operations of a kind (its record name, e.g. "MigrateOp") that the system carried out without an error, across all runs.</summary>
    public static long SucceededOf(string kind) => Succeeded.GetValueOrDefault(kind);

    /// <summary>How much each property runs: PARAFS_PROP_SCALE=10 runs ten times as many sequences (soak runs).</summary>
    public static int Scale(int tests) =>
        int.TryParse(Environment.GetEnvironmentVariable("PARAFS_PROP_SCALE"), out var scale) && scale > 0 ? tests * scale : tests;

    /// <summary>The longest sequence: PARAFS_PROP_OPS overrides the suite's default.</summary>
    public static int MaxOps(int ops) =>
        int.TryParse(Environment.GetEnvironmentVariable("PARAFS_PROP_OPS"), out var n) && n >= 5 ? n : ops;

    /// <summary>Throws with the whole history when the system and the model disagree.</summary>
    public static async Task RunAsync(ISystemUnderTest sut, IReadOnlyList<Op> ops, string label)
    {
        var model = Model.Empty;
        var history = new StringBuilder();
        var counts = Counts.GetOrAdd(label, _ => new long[2]);
        Interlocked.Increment(ref counts[0]);
        foreach (var op in ops)
        {
            model = await StepAsync(sut, model, op, history);
            Interlocked.Increment(ref counts[1]);
        }

        // Afterwards every handle is closed and everything the model holds must read back (through
        // another mount where the system has one): every file whole, every directory listed.
        while (model.Handles.Count > 0)
        {
            model = await StepAsync(sut, model, new CloseOp(0), history);
        }

        await sut.BeginVerificationAsync();
        foreach (var (path, node) in model.Entries)
        {
            if (node is FileNode)
            {
                model = await StepAsync(sut, model, new OpenOp(path, false), history);
                var handle = model.Handles.Count - 1;
                model = await StepAsync(sut, model, new ReadOp(handle, 0, model.Files[((FileNode)node).Id].Bytes.Length + 10), history);
                model = await StepAsync(sut, model, new CloseOp(handle), history);
            }
            else
            {
                model = await StepAsync(sut, model, new ReaddirOp(path), history);
            }
        }

        await StepAsync(sut, model, new ReaddirOp(""), history);
    }

    private static async Task<Model> StepAsync(ISystemUnderTest sut, Model model, Op op, StringBuilder history)
    {
        if (!op.Applicable(model))
        {
            return model;
        }

        var (next, expected) = op.Apply(model);
        Outcome actual;
        try
        {
            actual = await op.RunAsync(sut, model);
        }
        catch (ParaFsException e)
        {
            actual = Outcome.Of(e.Errno);
            if (expected.Errno == Errno.Ok)
            {
                history.AppendLine($"  {op} -> {e.Errno}: {e.Message}");
            }
        }

        history.AppendLine($"  {op} -> {actual.Errno} {actual.Data}");
        if (actual != expected)
        {
            throw new InvalidOperationException($"the system and the model disagree at the last step: expected {expected.Errno} {expected.Data}\n{history}");
        }

        if (expected.Errno == Errno.Ok)
        {
            Succeeded.AddOrUpdate(op.GetType().Name, 1, (_, n) => n + 1);
        }

        return expected.Errno == Errno.Ok ? next : model;
    }
}
