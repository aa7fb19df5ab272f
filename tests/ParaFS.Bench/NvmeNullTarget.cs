using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ParaFS.Nvme;

namespace ParaFS.Bench;

/// <summary>
/// A minimal NVMe/TCP target that stores nothing (writes are dropped, reads return zeros), for
/// measuring the host's own CPU cost without an emulated target pacing the bytes. Run as its own
/// process (`ParaFS.Bench nvme-null-target --port P`) so its CPU time is not the host's. It speaks
/// just what the host uses: no digests, one R2T per write over the in-capsule size, the whole read
/// in one C2HData (with SUCCESS when SQ flow control is off, as nvmet does).
/// </summary>
internal static class NvmeNullTarget
{
    public const string Nqn = "nqn.2026-11.io.parafs:null";
    private const int InCapsule = 16384;
    private const ulong Blocks = 1UL << 31; // 1 TiB of 512-byte blocks

    public static async Task<int> RunAsync(string[] args)
    {
        var port = int.Parse(args.SkipWhile(a => a != "--port").Skip(1).FirstOrDefault() ?? "4420", CultureInfo.InvariantCulture);
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Console.WriteLine($"listening 127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        while (true)
        {
            var socket = await listener.AcceptSocketAsync();
            socket.NoDelay = true;
            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private static async Task ServeAsync(Socket socket)
    {
        using var stream = new NetworkStream(socket, ownsSocket: true);
        using var input = new BufferedStream(stream, 256 * 1024);
        var output = new MemoryStream(256 * 1024);
        var header = new byte[128];
        var data = new byte[8 << 20];
        var zeros = new byte[8 << 20];
        var disableSqFlow = false;
        uint cc = 0;
        try
        {
            await input.ReadExactlyAsync(header.AsMemory(0, 128));
            var icresp = new byte[128];
            Pdu.WriteCommonHeader(icresp, PduType.ICResp, PduFlags.None, 128, 0, 128);
            BinaryPrimitives.WriteUInt32LittleEndian(icresp.AsSpan(12), 4 << 20);
            await stream.WriteAsync(icresp);
            while (true)
            {
                await input.ReadExactlyAsync(header.AsMemory(0, 8));
                var plen = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
                var hlen = header[2];
                await input.ReadExactlyAsync(header.AsMemory(8, hlen - 8));
                var payload = plen - hlen;
                if (payload > 0)
                {
                    await input.ReadExactlyAsync(data.AsMemory(0, payload));
                }
                if ((PduType)header[0] == PduType.H2CData)
                {
                    if ((header[1] & (byte)PduFlags.LastPdu) != 0)
                    {
                        Respond(output, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(8)), 0);
                    }
                }
                else
                {
                    var sqe = header.AsSpan(8, 64);
                    var cid = BinaryPrimitives.ReadUInt16LittleEndian(sqe[2..]);
                    var length = BinaryPrimitives.ReadInt32LittleEndian(sqe[32..]);
                    var inCapsule = sqe[39] == 0x01;
                    switch (sqe[0])
                    {
                        case Opcode.Fabrics when sqe[4] == Opcode.Connect:
                            disableSqFlow = (sqe[46] & 4) != 0;
                            Respond(output, cid, 1, sqHead: disableSqFlow ? (ushort)0xFFFF : (ushort)0);
                            break;
                        case Opcode.Fabrics when sqe[4] == Opcode.PropertyGet:
                            var offset = BinaryPrimitives.ReadUInt32LittleEndian(sqe[44..]);
                            ulong value = offset switch
                            {
                                0x00 => 0x000008200F0003FFUL,
                                0x08 => 0x00010300,
                                0x14 => cc,
                                0x1C => (cc & 1) | (((cc >> 14) & 3) != 0 ? 0x8u : 0),
                                _ => 0,
                            };
                            Respond(output, cid, value);
                            break;
                        case Opcode.Fabrics when sqe[4] == Opcode.PropertySet:
                            cc = BinaryPrimitives.ReadUInt32LittleEndian(sqe[48..]);
                            Respond(output, cid, 0);
                            break;
                        case Opcode.Identify:
                            var identify = new byte[4096];
                            var cns = sqe[40];
                            if (cns == 1)
                            {
                                Encoding.ASCII.GetBytes("null-target").CopyTo(identify, 24);
                                BinaryPrimitives.WriteUInt32LittleEndian(identify.AsSpan(516), 1);
                                BinaryPrimitives.WriteUInt16LittleEndian(identify.AsSpan(520), 0xC);
                                Encoding.ASCII.GetBytes(Nqn).CopyTo(identify, 768);
                                BinaryPrimitives.WriteUInt32LittleEndian(identify.AsSpan(1792), (InCapsule + 64) / 16);
                            }
                            else if (cns == 0)
                            {
                                BinaryPrimitives.WriteUInt64LittleEndian(identify, Blocks);
                                BinaryPrimitives.WriteUInt64LittleEndian(identify.AsSpan(8), Blocks);
                                identify[128 + 2] = 9;
                            }
                            else if (cns == 2)
                            {
                                BinaryPrimitives.WriteUInt32LittleEndian(identify, 1);
                            }
                            SendData(output, cid, identify, false);
                            Respond(output, cid, 0);
                            break;
                        case Opcode.SetFeatures:
                            Respond(output, cid, 0x007F007F);
                            break;
                        case Opcode.Read:
                            SendData(output, cid, zeros.AsSpan(0, length), disableSqFlow);
                            if (!disableSqFlow)
                            {
                                Respond(output, cid, 0);
                            }
                            break;
                        case Opcode.Write when !inCapsule && length > 0:
                            var r2t = new byte[24];
                            Pdu.WriteCommonHeader(r2t, PduType.R2T, PduFlags.None, 24, 0, 24);
                            BinaryPrimitives.WriteUInt16LittleEndian(r2t.AsSpan(8), cid);
                            BinaryPrimitives.WriteUInt32LittleEndian(r2t.AsSpan(16), (uint)length);
                            output.Write(r2t);
                            break;
                        default:
                            Respond(output, cid, 0);
                            break;
                    }
                }
                // Answer in batches: flush only once nothing more is waiting to be read.
                if (output.Length > 0 && (socket.Available == 0 || output.Length > 128 * 1024))
                {
                    await stream.WriteAsync(output.GetBuffer().AsMemory(0, (int)output.Length));
                    output.SetLength(0);
                }
            }
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or SocketException or ObjectDisposedException)
        {
        }
    }

    private static void Respond(MemoryStream output, ushort cid, ulong result, ushort sqHead = 0)
    {
        Span<byte> pdu = stackalloc byte[24];
        pdu.Clear();
        Pdu.WriteCommonHeader(pdu, PduType.CapsuleResp, PduFlags.None, 24, 0, 24);
        BinaryPrimitives.WriteUInt64LittleEndian(pdu[8..], result);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[16..], sqHead);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[20..], cid);
        output.Write(pdu);
    }

    private static void SendData(MemoryStream output, ushort cid, ReadOnlySpan<byte> data, bool success)
    {
        Span<byte> pdu = stackalloc byte[24];
        pdu.Clear();
        var flags = PduFlags.LastPdu | (success ? PduFlags.Success : 0);
        Pdu.WriteCommonHeader(pdu, PduType.C2HData, flags, 24, 24, 24 + data.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[8..], cid);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[16..], (uint)data.Length);
        output.Write(pdu);
        output.Write(data);
    }
}
