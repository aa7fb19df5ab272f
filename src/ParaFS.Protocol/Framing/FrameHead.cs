using System.Buffers;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Framing;

/// <summary>A frame's preamble, parsed call header, and its message bytes (still in the receive buffer).</summary>
public readonly record struct FrameHead(FramePreamble Preamble, CallHeader Header, ReadOnlySequence<byte> Message);

public enum FrameHeadStatus
{
    NeedMoreData,
    Complete,
    Invalid,
}
