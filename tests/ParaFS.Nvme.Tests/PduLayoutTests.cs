using System.Buffers.Binary;
using System.Text;

namespace ParaFS.Nvme.Tests;

/// <summary>Byte-exact layouts against shared/reference/nvme-tcp.md sections 2-7.</summary>
public sealed class PduLayoutTests
{
    [Fact]
    public void ICReq_is_128_bytes_with_hpda_0_maxr2t_0_and_the_digest_wish()
    {
        var pdu = new byte[128];
        Pdu.WriteICReq(pdu, headerDigest: true, dataDigest: true);
        Assert.Equal(new byte[] { 0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00 }, pdu[..8]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(8))); // PFV
        Assert.Equal(0, pdu[10]);                                                 // HPDA
        Assert.Equal(3, pdu[11]);                                                 // DGST
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(12))); // MAXR2T
        Assert.All(pdu[16..], b => Assert.Equal(0, b));

        Pdu.WriteICReq(pdu, headerDigest: false, dataDigest: true);
        Assert.Equal(2, pdu[11]);
    }

    [Fact]
    public void ICResp_fields_parse_as_measured_on_nvmet()
    {
        var pdu = new byte[128];
        Pdu.WriteCommonHeader(pdu, PduType.ICResp, PduFlags.None, 128, 0, 128);
        pdu[11] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(12), 0x400000);
        var resp = ICResp.Parse(pdu);
        Assert.Equal(new ICResp(0, 0, true, false, 4 << 20), resp);
    }

    [Fact]
    public void Read_sqe_uses_psdt_sgl_and_a_transport_data_block()
    {
        var sqe = new byte[64];
        NvmeCommand.ReadWrite(Opcode.Read, 1, 0x1_0000_0002, 8).WriteTo(sqe, 0x1234, 4096, inCapsule: false);
        Assert.Equal(0x02, sqe[0]);
        Assert.Equal(0x40, sqe[1]);
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16LittleEndian(sqe.AsSpan(2)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(4)));
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(sqe.AsSpan(24)));   // SGL address
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(32))); // SGL length
        Assert.Equal(0x5A, sqe[39]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(40)));    // SLBA low
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));    // SLBA high
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(48)));    // NLB 0's based
    }

    [Fact]
    public void In_capsule_write_uses_a_data_block_offset_descriptor()
    {
        var sqe = new byte[64];
        NvmeCommand.ReadWrite(Opcode.Write, 1, 0, 1).WriteTo(sqe, 7, 512, inCapsule: true);
        Assert.Equal(0x01, sqe[0]);
        Assert.Equal(0x40, sqe[1]);
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(32)));
        Assert.Equal(0x01, sqe[39]);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(48)));
    }

    [Fact]
    public void Connect_sqe_carries_fctype_qid_sqsize_cattr_and_kato()
    {
        var sqe = new byte[64];
        NvmeCommand.Connect(qid: 3, sqSize0Based: 127, disableSqFlowControl: true, keepAliveMs: 5000).WriteTo(sqe, 0, 1024, inCapsule: true);
        Assert.Equal(0x7F, sqe[0]);
        Assert.Equal(0x40, sqe[1]);
        Assert.Equal(0x01, sqe[4]);                                                  // FCTYPE Connect
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(sqe.AsSpan(40)));    // RECFMT
        Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(sqe.AsSpan(42)));    // QID
        Assert.Equal(127, BinaryPrimitives.ReadUInt16LittleEndian(sqe.AsSpan(44)));  // SQSIZE
        Assert.Equal(0x04, sqe[46]);                                                 // CATTR: SQ flow control off
        Assert.Equal(5000u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(48))); // KATO
        Assert.Equal(0x01, sqe[39]);
        Assert.Equal(1024u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(32)));
    }

    [Fact]
    public void Connect_data_places_hostid_cntlid_subnqn_and_hostnqn()
    {
        var data = new byte[1024];
        var hostId = Guid.Parse("00112233-4455-6677-8899-aabbccddeeff");
        NvmeCommand.WriteConnectData(data, hostId, 0xFFFF, "nqn.sub", "nqn.host");
        Assert.Equal(Convert.FromHexString("00112233445566778899AABBCCDDEEFF"), data[..16]);
        Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(16)));
        Assert.Equal("nqn.sub", Encoding.ASCII.GetString(data, 256, 7));
        Assert.Equal(0, data[256 + 7]);
        Assert.Equal("nqn.host", Encoding.ASCII.GetString(data, 512, 8));
        Assert.All(data[768..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Property_get_set_and_the_enable_value()
    {
        var sqe = new byte[64];
        NvmeCommand.PropertyGet(0x00, eightBytes: true).WriteTo(sqe, 1, 0, false);
        Assert.Equal(0x04, sqe[4]);
        Assert.Equal(1, sqe[40]);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));

        NvmeCommand.PropertySet(0x14, 0x00460001, eightBytes: false).WriteTo(sqe, 1, 0, false);
        Assert.Equal(0x00, sqe[4]);
        Assert.Equal(0, sqe[40]);
        Assert.Equal(0x14u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));
        Assert.Equal(0x00460001ul, BinaryPrimitives.ReadUInt64LittleEndian(sqe.AsSpan(48)));
    }

    [Fact]
    public void Admin_commands_encode_their_dwords()
    {
        var sqe = new byte[64];
        NvmeCommand.SetNumberOfQueues(4).WriteTo(sqe, 0, 0, false);
        Assert.Equal(0x09, sqe[0]);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(40)));
        Assert.Equal(0x0003_0003u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));

        NvmeCommand.GetLogPage(0x70, 1024, 4096).WriteTo(sqe, 0, 1024, false);
        Assert.Equal(0x02, sqe[0]);
        Assert.Equal(0x70u | (255u << 16), BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(40))); // LID | NUMDL
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));                  // NUMDU
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(48)));

        NvmeCommand.Identify(1, 0).WriteTo(sqe, 0, 4096, false);
        Assert.Equal(0x06, sqe[0]);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(40)));
    }

    [Fact]
    public void Write_zeroes_and_dataset_management_fields()
    {
        var sqe = new byte[64];
        NvmeCommand.WriteZeroes(1, 16, 65536, deallocate: true).WriteTo(sqe, 0, 0, false);
        Assert.Equal(0x08, sqe[0]);
        Assert.Equal(0x5A, sqe[39]);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(32)));
        Assert.Equal((1u << 25) | 0xFFFF, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(48)));

        NvmeCommand.Deallocate(1, 3).WriteTo(sqe, 0, 48, true);
        Assert.Equal(0x09, sqe[0]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(40)));  // NR 0's based
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(sqe.AsSpan(44)));  // AD

        var range = new byte[16];
        NvmeCommand.WriteDsmRange(range, 0x1_0000_0000, 8);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(range));
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32LittleEndian(range.AsSpan(4))); // not 0's based
        Assert.Equal(0x1_0000_0000ul, BinaryPrimitives.ReadUInt64LittleEndian(range.AsSpan(8)));
    }

    [Fact]
    public void H2CData_header_echoes_cid_ttag_and_offsets()
    {
        var pdu = new byte[24];
        Pdu.WriteH2CData(pdu, PduFlags.LastPdu, 24, 24 + 4096, cid: 5, ttag: 9, dataOffset: 16384, dataLength: 4096);
        Assert.Equal(new byte[] { 0x06, 0x04, 0x18, 0x18, 0x18, 0x10, 0x00, 0x00 }, pdu[..8]);
        Assert.Equal(5, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(8)));
        Assert.Equal(9, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(10)));
        Assert.Equal(16384u, BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(12)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(16)));
    }

    [Fact]
    public void Measured_capsule_resp_and_c2hdata_headers_parse()
    {
        // CapsuleResp header as measured: 05 00 18 00 18 00 00 00, then a CQE.
        var resp = Convert.FromHexString("050018001800000001000000000000000000010007000000");
        Assert.Equal(PduType.CapsuleResp, (PduType)resp[0]);
        Assert.Equal(Pdu.CapsuleRespHeaderLength, resp[2]);
        var cqe = NvmeCompletion.Parse(resp.AsSpan(8));
        Assert.Equal(1u, cqe.Dw0);
        Assert.Equal(1, cqe.SqId);
        Assert.Equal(7, cqe.Cid);
        Assert.True(cqe.IsSuccess);

        // C2HData for 4 KiB with SUCCESS, as measured: 07 0c 18 18 18 10 00 00.
        var c2h = Convert.FromHexString("070C18181810000003000000000000000010000000000000");
        Assert.Equal(PduFlags.LastPdu | PduFlags.Success, (PduFlags)c2h[1]);
        Assert.Equal(4120u, BinaryPrimitives.ReadUInt32LittleEndian(c2h.AsSpan(4)));
        Assert.Equal(new C2HData(3, 0, 4096), C2HData.Parse(c2h));

        var r2t = Convert.FromHexString("09001800180000000400020000400000000C000000000000");
        Assert.Equal(new R2T(4, 2, 16384, 3072), R2T.Parse(r2t));
    }

    [Fact]
    public void Completion_status_decodes_sct_sc_and_dnr()
    {
        // SC 0x06 (Internal Error) + DNR: what nvmet 6.1 answers for a read past the end.
        var status = (ushort)(0x8000 | (0x06 << 1));
        var cqe = new NvmeCompletion(0, 0, 0, 0, 0, status);
        Assert.False(cqe.IsSuccess);
        Assert.Equal(0x06, cqe.StatusCode);
        Assert.Equal(0, cqe.StatusCodeType);
        Assert.True(cqe.DoNotRetry);
        Assert.Contains("Internal Error", cqe.DescribeStatus());
        var connect = new NvmeCompletion(0, 0, 0, 0, 0, (ushort)((1 << 9) | (0x84 << 1)));
        Assert.Contains("Invalid Host", connect.DescribeStatus());
    }

    [Theory]
    [InlineData(72, false, 0, 72)]
    [InlineData(72, true, 0, 76)]
    [InlineData(24, true, 0, 28)]
    [InlineData(24, false, 7, 32)]
    [InlineData(72, true, 31, 128)]
    public void Data_offset_counts_the_header_digest_and_the_alignment(int hlen, bool headerDigest, int cpda, int pdo) =>
        Assert.Equal(pdo, Pdu.DataOffset(hlen, headerDigest, cpda));

    [Fact]
    public void Identify_structures_parse_the_measured_nvmet_values()
    {
        var data = new byte[4096];
        Encoding.ASCII.GetBytes("ParaFS-test-nvmet   ").CopyTo(data, 24);
        data[77] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(320), 10);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(514), 1024);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(516), 1024);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(520), 0xC);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(1792), 1028);
        var id = IdentifyController.Parse(data);
        Assert.Equal("ParaFS-test-nvmet", id.ModelNumber);
        Assert.Equal(16384, id.InCapsuleDataBytes);
        Assert.True(id.SupportsWriteZeroes);
        Assert.True(id.SupportsDatasetManagement);
        Assert.Equal(10, id.KeepAliveSupport100Ms);

        var ns = new byte[4096];
        BinaryPrimitives.WriteUInt64LittleEndian(ns, 131072);
        ns[25] = 1;
        ns[26] = 1;
        ns[128 + 2] = 9;
        ns[132 + 2] = 12;
        var parsed = IdentifyNamespace.Parse(ns);
        Assert.Equal(131072ul, parsed.SizeBlocks);
        Assert.Equal(4096, parsed.BlockSize);
    }

    [Fact]
    public void Discovery_entry_parses()
    {
        var entry = new byte[1024];
        entry[0] = 3;
        entry[1] = 1;
        entry[2] = 2;
        BinaryPrimitives.WriteUInt16LittleEndian(entry.AsSpan(6), 0xFFFF);
        Encoding.ASCII.GetBytes("4420").CopyTo(entry, 32);
        Encoding.ASCII.GetBytes("nqn.x").CopyTo(entry, 256);
        Encoding.ASCII.GetBytes("10.0.2.15").CopyTo(entry, 512);
        var parsed = DiscoveryLogEntry.Parse(entry);
        Assert.True(parsed.IsNvmSubsystem);
        Assert.Equal("4420", parsed.TransportServiceId);
        Assert.Equal("nqn.x", parsed.SubsystemNqn);
        Assert.Equal("10.0.2.15", parsed.TransportAddress);
        Assert.Equal(0xFFFF, parsed.ControllerId);
    }
}
