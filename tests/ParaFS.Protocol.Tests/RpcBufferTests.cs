using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class RpcBufferTests
{
    [Theory]
    [InlineData(64 * 1024)]
    [InlineData(100_000)]
    [InlineData(1024 * 1024)]
    [InlineData((1024 * 1024) + 1)]
    [InlineData(32 * 1024 * 1024)]
    public unsafe void Buffers_from_64_KiB_on_start_on_a_page_and_come_back_to_the_pool(int length)
    {
        nint first;
        using (var buffer = RpcBuffer.Rent(length))
        {
            Assert.Equal(length, buffer.Length);
            using var pin = buffer.Memory.Pin();
            first = (nint)pin.Pointer;
            Assert.Equal(0, first % 4096);
            buffer.Span[^1] = 1; // the whole length is usable
        }

        // Returned and rented again (from the pool, most likely the same pinned array): still aligned.
        using var again = RpcBuffer.Rent(length);
        using var pinAgain = again.Memory.Pin();
        Assert.Equal(0, (nint)pinAgain.Pointer % 4096);
    }

    [Fact]
    public void A_small_buffer_and_a_disposed_one_behave()
    {
        var small = RpcBuffer.Rent(100);
        Assert.Equal(100, small.Memory.Length);
        small.Dispose();
        small.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(() => small.Memory);
        Assert.Equal(0, RpcBuffer.Rent(0).Length);
    }
}
