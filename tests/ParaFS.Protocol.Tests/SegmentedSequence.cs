using System.Buffers;

namespace ParaFS.Protocol.Tests;

/// <summary>Builds a multi-segment sequence, as a pipe hands out, from one array cut at given points.</summary>
public static class SegmentedSequence
{
    public static ReadOnlySequence<byte> Split(byte[] bytes, IEnumerable<int> cuts)
    {
        var points = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().ToList();
        points.Add(bytes.Length);
        Segment? first = null;
        Segment? last = null;
        var start = 0;
        foreach (var end in points)
        {
            var segment = new Segment(bytes.AsMemory(start, end - start), last?.RunningIndex + last?.Memory.Length ?? 0);
            first ??= segment;
            last?.SetNext(segment);
            last = segment;
            start = end;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public void SetNext(Segment next) => Next = next;
    }
}
