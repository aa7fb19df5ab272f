namespace ParaFS.Nvme.Tests;

public sealed class NvmeTcpAddressTests
{
    [Fact]
    public void Host_port_nqn_and_nsid()
    {
        var (address, _) = NvmeTcpAddress.Parse("nvme-tcp://127.0.0.1:4421/nqn.2026-11.io.parafs:nvmet-4421/2");
        Assert.Equal(new NvmeTcpAddress("127.0.0.1", 4421, "nqn.2026-11.io.parafs:nvmet-4421", 2), address);
        Assert.Equal("nvme-tcp://127.0.0.1:4421/nqn.2026-11.io.parafs:nvmet-4421/2", address.ToString());
    }

    [Fact]
    public void Port_and_nsid_are_optional()
    {
        var (address, _) = NvmeTcpAddress.Parse("nvme-tcp://array.example/nqn.2014-08.com.vendor:sub1");
        Assert.Equal(new NvmeTcpAddress("array.example", 4420, "nqn.2014-08.com.vendor:sub1", null), address);
        var (v6, _) = NvmeTcpAddress.Parse("nvme-tcp://[fd00::1]:4420/nqn.a/7");
        Assert.Equal("fd00::1", v6.Host);
        Assert.Equal(7u, v6.NamespaceId);
    }

    [Fact]
    public void Query_options_override_the_defaults()
    {
        var (_, options) = NvmeTcpAddress.Parse("nvme-tcp://h:1/nqn.a/1?queues=4&depth=64&digest=both&timeout=2.5&kato=0&max-transfer=131072&sqflow=1");
        Assert.Equal(4, options.IoQueues);
        Assert.Equal(64, options.QueueDepth);
        Assert.True(options.HeaderDigest);
        Assert.True(options.DataDigest);
        Assert.Equal(TimeSpan.FromSeconds(2.5), options.CommandTimeout);
        Assert.Equal(TimeSpan.Zero, options.KeepAliveTimeout);
        Assert.Equal(131072, options.MaxTransferBytes);
        Assert.False(options.DisableSqFlowControl);
    }

    [Theory]
    [InlineData("tcp://h:4420/nqn.a")]
    [InlineData("nvme-tcp://h:4420")]
    [InlineData("nvme-tcp://h:99999/nqn.a")]
    [InlineData("nvme-tcp://h:4420/nqn.a/0")]
    [InlineData("nvme-tcp://h:4420/nqn.a?digest=crc")]
    [InlineData("nvme-tcp://h:4420/nqn.a?colour=red")]
    [InlineData("nvme-tcp://h:4420/nqn.a?queues=0")]
    public void Bad_urls_are_refused_with_a_reason(string url)
    {
        var error = Assert.ThrowsAny<Exception>(() => NvmeTcpAddress.Parse(url));
        Assert.True(error is FormatException or ArgumentException);
        Assert.NotEmpty(error.Message);
    }

    [Fact]
    public async Task Opening_a_bad_url_is_einval()
    {
        var error = await Assert.ThrowsAsync<ParaFS.Common.ParaFsException>(() => NvmeNamespaceDevice.OpenAsync("nvme-tcp://h"));
        Assert.Equal(ParaFS.Common.Errno.EINVAL, error.Errno);
    }
}
