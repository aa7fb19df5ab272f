using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace ParaFS.Nvme.Tests;

/// <summary>
/// A scripted NVMe/TCP target on a loopback TcpListener, speaking the real PDU format, for the
/// faults the real target will not produce on demand (closing mid-command, bad digests,
/// truncated PDUs, silence). One connection; the script runs after the handshake.
/// </summary>
public sealed class FakeTarget : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _run;

    private FakeTarget(Func<FakeConnection, Task> script, bool headerDigest, bool dataDigest, int maxH2CData, byte? answeredDigest, bool silentAfterICResp)
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _run = Task.Run(async () =>
        {
            using var client = await _listener.AcceptTcpClientAsync();
            client.NoDelay = true;
            var connection = new FakeConnection(client.GetStream(), headerDigest, dataDigest);
            try
            {
                await connection.HandshakeAsync(maxH2CData, answeredDigest, silentAfterICResp);
                await script(connection);
            }
            catch (IOException)
            {
                // The host hung up first: fine for a fault test.
            }
        });
    }

    public int Port { get; }

    /// <summary>Errors the script itself hit (assertions inside it).</summary>
    public Task Completion => _run;

    public static FakeTarget Start(Func<FakeConnection, Task> script, bool headerDigest = false, bool dataDigest = false,
        int maxH2CData = 1 << 20, byte? answeredDigest = null, bool silentAfterICResp = false) =>
        new(script, headerDigest, dataDigest, maxH2CData, answeredDigest, silentAfterICResp);

    public NvmeQueueParameters Queue(NvmeTcpOptions options) =>
        new("127.0.0.1", Port, "nqn.2026-11.io.parafs:fake", 1, 8, 1, options);

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        try
        {
            await _run.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or TimeoutException)
        {
        }
    }
}

public sealed class FakeConnection
{
    private readonly NetworkStream _stream;

    public FakeConnection(NetworkStream stream, bool headerDigest, bool dataDigest)
    {
        _stream = stream;
        HeaderDigest = headerDigest;
        DataDigest = dataDigest;
    }

    public bool HeaderDigest { get; }

    public bool DataDigest { get; }

    public byte[] ConnectPdu { get; private set; } = [];

    public async Task HandshakeAsync(int maxH2CData, byte? answeredDigest, bool silentAfterICResp = false)
    {
        var icreq = await ReadPduAsync();
        if (icreq[0] != 0 || icreq.Length != 128)
        {
            throw new InvalidDataException("expected an ICReq");
        }
        var icresp = new byte[128];
        Pdu.WriteCommonHeader(icresp, PduType.ICResp, PduFlags.None, 128, 0, 128);
        icresp[11] = answeredDigest ?? icreq[11];
        BinaryPrimitives.WriteUInt32LittleEndian(icresp.AsSpan(12), (uint)maxH2CData);
        await _stream.WriteAsync(icresp);
        ConnectPdu = await ReadPduAsync();
        if (silentAfterICResp)
        {
            return;
        }
        await SendCapsuleRespAsync(Cid(ConnectPdu), dw0: 1);
    }

    public static ushort Cid(byte[] capsule) => BinaryPrimitives.ReadUInt16LittleEndian(capsule.AsSpan(10));

    /// <summary>One whole PDU as sent: the common header tells its length.</summary>
    public async Task<byte[]> ReadPduAsync()
    {
        var header = new byte[8];
        await _stream.ReadExactlyAsync(header);
        var plen = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        var pdu = new byte[plen];
        header.CopyTo(pdu, 0);
        await _stream.ReadExactlyAsync(pdu.AsMemory(8));
        return pdu;
    }

    public Task SendCapsuleRespAsync(ushort cid, ushort status = 0, uint dw0 = 0, bool corruptHeaderDigest = false)
    {
        var hd = HeaderDigest ? 4 : 0;
        var pdu = new byte[24 + hd];
        Pdu.WriteCommonHeader(pdu, PduType.CapsuleResp, HeaderDigest ? PduFlags.HeaderDigest : 0, 24, 0, pdu.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(8), dw0);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(20), cid);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(22), status);
        if (HeaderDigest)
        {
            Pdu.WriteDigest(pdu.AsSpan(24), pdu.AsSpan(0, 24));
            if (corruptHeaderDigest)
            {
                pdu[24] ^= 0xFF;
            }
        }
        return SendAsync(pdu);
    }

    public Task SendC2HDataAsync(ushort cid, byte[] data, PduFlags extraFlags = PduFlags.LastPdu, bool corruptDataDigest = false)
    {
        var hd = HeaderDigest ? 4 : 0;
        var dd = DataDigest ? 4 : 0;
        var pdo = 24 + hd;
        var pdu = new byte[pdo + data.Length + dd];
        var flags = extraFlags | (HeaderDigest ? PduFlags.HeaderDigest : 0) | (DataDigest ? PduFlags.DataDigest : 0);
        Pdu.WriteCommonHeader(pdu, PduType.C2HData, flags, 24, pdo, pdu.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(8), cid);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(16), (uint)data.Length);
        if (HeaderDigest)
        {
            Pdu.WriteDigest(pdu.AsSpan(24), pdu.AsSpan(0, 24));
        }
        data.CopyTo(pdu, pdo);
        if (DataDigest)
        {
            Pdu.WriteDigest(pdu.AsSpan(pdo + data.Length), data);
            if (corruptDataDigest)
            {
                pdu[^1] ^= 0x5A;
            }
        }
        return SendAsync(pdu);
    }

    public Task SendR2TAsync(ushort cid, ushort ttag, int offset, int length)
    {
        var pdu = new byte[24];
        Pdu.WriteCommonHeader(pdu, PduType.R2T, PduFlags.None, 24, 0, 24);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(8), cid);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(10), ttag);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(12), (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(16), (uint)length);
        return SendAsync(pdu);
    }

    public async Task SendAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    public void Close() => _stream.Socket.Close();
}
