using ParaFS.Common.Storage;
using System.Text;

namespace ParaFS.Nvme.Tests;

public sealed class Crc32CTests
{
    [Fact]
    public void Check_value_of_123456789_is_E3069283() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));

    [Fact]
    public void Empty_input_gives_zero() => Assert.Equal(0u, Crc32C.Compute([]));

    // RFC 3720 (iSCSI) appendix B.4 vectors, which use the same CRC32C.
    [Fact]
    public void Rfc3720_vectors()
    {
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Fact]
    public void Appending_in_pieces_equals_one_pass()
    {
        var data = new byte[4099];
        new Random(7).NextBytes(data);
        var crc = Crc32C.Initial;
        foreach (var piece in data.Chunk(13))
        {
            crc = Crc32C.Append(crc, piece);
        }
        Assert.Equal(Crc32C.Compute(data), Crc32C.Finish(crc));
    }

    [Fact]
    public void Is_not_plain_crc32() =>
        Assert.NotEqual(0xCBF43926u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
}
