using System.Text;
using ParaFS.Fuse.Protocol;
using static ParaFS.Fuse.Tests.KernelRequest;

namespace ParaFS.Fuse.Tests;

/// <summary>The request loop against a fake /dev/fuse: requests in the kernel's bytes, replies checked byte for byte.</summary>
public sealed class SessionProtocolTests
{
    private const int ENOENT = 2;
    private const int EINTR = 4;
    private const int EIO = 5;
    private const int EAGAIN = 11;
    private const int ERANGE = 34;
    private const int ENOSYS = 38;
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task Init_grants_the_throughput_flags_with_1_MiB_writes_and_256_pages()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), init: false);
        var reply = kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags);

        Assert.Equal(16 + 64, reply.Bytes.Length);
        Assert.Equal((uint)reply.Bytes.Length, reply.Header.Len);
        Assert.Equal(0, reply.Error);
        var init = reply.Read<FuseInitOut>();
        Assert.Equal(7u, init.Major);
        Assert.Equal(45u, init.Minor);
        Assert.Equal(128u * 1024, init.MaxReadahead);
        Assert.Equal(1024u * 1024, init.MaxWrite);
        Assert.Equal(256, init.MaxPages);
        Assert.Equal(1u, init.TimeGran);
        Assert.Equal(64, init.MaxBackground);
        Assert.Equal(48, init.CongestionThreshold);
        var flags = init.Flags | ((ulong)init.Flags2 << 32);
        var expected = InitFlags.AsyncRead | InitFlags.AtomicOTrunc | InitFlags.BigWrites | InitFlags.AutoInvalData
            | InitFlags.AsyncDio | InitFlags.ParallelDirops | InitFlags.MaxPages | InitFlags.DoReaddirplus
            | InitFlags.ReaddirplusAuto | InitFlags.InitExt;
        Assert.Equal(expected, flags);
        Assert.Equal(expected, kernel.Session.NegotiatedFlags);
    }

    [Fact]
    public async Task Init_echoes_only_flags_the_kernel_offered()
    {
        var options = new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 1, WritebackCache = true };
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), options, init: false);
        var offered = (uint)(InitFlags.AsyncRead | InitFlags.BigWrites | InitFlags.MaxPages);
        var init = kernel.Init(offered, 0).Read<FuseInitOut>();

        Assert.Equal(offered, init.Flags);
        Assert.Equal(0u, init.Flags2);
    }

    [Fact]
    public async Task Init_with_the_writeback_option_grants_writeback_cache()
    {
        var options = new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 1, WritebackCache = true };
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), options, init: false);
        var init = kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags).Read<FuseInitOut>();

        Assert.NotEqual(0u, init.Flags & (uint)InitFlags.WritebackCache);
    }

    [Fact]
    public async Task Init_with_locks_grants_posix_and_flock_locks_and_a_file_system_without_them_answers_ENOSYS()
    {
        var options = new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 1, Locks = true };
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), options, init: false);
        var init = kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags).Read<FuseInitOut>();
        Assert.Equal(InitFlags.PosixLocks | InitFlags.FlockLocks, init.Flags & (InitFlags.PosixLocks | InitFlags.FlockLocks));

        var lk = new FuseLkIn { Fh = 1, Owner = 42, Lk = new FuseFileLock { Start = 0, End = 99, Type = 1, Pid = 7 }, LkFlags = RequestFlags.LkFlock };
        Assert.Equal(-38, kernel.Call(FuseOpcode.SetLk, 1, Bytes(lk)).Error);
        Assert.Equal(-38, kernel.Call(FuseOpcode.GetLk, 1, Bytes(lk)).Error);
    }

    [Fact]
    public async Task Init_from_a_newer_major_answers_with_our_version_and_waits()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), init: false);
        var first = kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags, major: 8).Read<FuseInitOut>();
        Assert.Equal(7u, first.Major);
        Assert.Equal(0u, first.Flags);

        var second = kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags);
        Assert.Equal(1024u * 1024, second.Read<FuseInitOut>().MaxWrite);
    }

    [Fact]
    public async Task Lookup_replies_fuse_entry_out_with_timeouts_split_into_seconds_and_nanoseconds()
    {
        var fs = new MemoryFileSystem { EntryTimeout = TimeSpan.FromMilliseconds(1500), AttrTimeout = TimeSpan.FromSeconds(2) };
        var id = fs.AddFile(1, "hello.txt", "hello"u8.ToArray());
        await using var kernel = FakeKernel.Start(fs);

        var reply = kernel.Call(FuseOpcode.Lookup, 1, Name("hello.txt"));

        Assert.Equal(0, reply.Error);
        Assert.Equal(16u + 128, reply.Header.Len);
        var entry = reply.Read<FuseEntryOut>();
        Assert.Equal(id, entry.NodeId);
        Assert.Equal(1ul, entry.Generation);
        Assert.Equal(1ul, entry.EntryValid);
        Assert.Equal(500_000_000u, entry.EntryValidNsec);
        Assert.Equal(2ul, entry.AttrValid);
        Assert.Equal(0u, entry.AttrValidNsec);
        Assert.Equal(id, entry.Attr.Ino);
        Assert.Equal(5ul, entry.Attr.Size);
        Assert.Equal(MemoryFileSystem.SIfReg | 0x1A4, entry.Attr.Mode);
        Assert.Equal(4096u, entry.Attr.BlkSize);
        Assert.True(entry.Attr.MtimeNsec < 1_000_000_000);
        Assert.Equal(1ul, fs.LookupCount(id));
    }

    [Fact]
    public async Task Lookup_of_a_missing_name_replies_ENOENT_as_a_bare_header()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var unique = kernel.Send(FuseOpcode.Lookup, 1, Name("missing"));
        var reply = kernel.Reply(unique);

        Assert.Equal(16, reply.Bytes.Length);
        Assert.Equal(16u, reply.Header.Len);
        Assert.Equal(-ENOENT, reply.Error);
        Assert.Equal(unique, reply.Unique);
    }

    [Fact]
    public async Task Getattr_passes_the_file_handle_only_when_the_kernel_flags_it()
    {
        var fs = new HandleRecordingFileSystem();
        await using var kernel = FakeKernel.Start(fs);

        var withHandle = kernel.Call(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn { GetAttrFlags = 1, Fh = 77 }));
        Assert.Equal(77ul, fs.LastHandle);
        kernel.Call(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn { GetAttrFlags = 0, Fh = 99 }));
        Assert.Null(fs.LastHandle);

        Assert.Equal(16u + 104, withHandle.Header.Len);
        var attr = withHandle.Read<FuseAttrReply>();
        Assert.Equal(1ul, attr.AttrValid);
        Assert.Equal(MemoryFileSystem.SIfDir | 0x1ED, attr.Attr.Mode);
    }

    [Fact]
    public async Task Setattr_hands_over_the_valid_mask_sizes_and_times()
    {
        var fs = new MemoryFileSystem();
        var id = fs.AddFile(1, "f", new byte[100]);
        await using var kernel = FakeKernel.Start(fs);
        var setattr = new FuseSetAttrIn { Valid = 1 | 8 | 32, Mode = 0x180, Size = 10, Mtime = 1_700_000_000, MtimeNsec = 5 };

        var reply = kernel.Call(FuseOpcode.SetAttr, id, Bytes(setattr));

        var attr = reply.Read<FuseAttrReply>().Attr;
        Assert.Equal(10ul, attr.Size);
        Assert.Equal(MemoryFileSystem.SIfReg | 0x180, attr.Mode);
        Assert.Equal(1_700_000_000ul, attr.Mtime);
        Assert.Equal(5u, attr.MtimeNsec);
    }

    [Fact]
    public async Task Read_replies_header_and_data_in_one_write_of_the_returned_length()
    {
        var fs = new MemoryFileSystem();
        var id = fs.AddFile(1, "f", Encoding.ASCII.GetBytes("0123456789"));
        await using var kernel = FakeKernel.Start(fs);

        var reply = kernel.Call(FuseOpcode.Read, id, Bytes(new FuseReadIn { Fh = 1, Offset = 3, Size = 4096 }));

        Assert.Equal(0, reply.Error);
        Assert.Equal(16u + 7, reply.Header.Len);
        Assert.Equal("3456789", Encoding.ASCII.GetString(reply.Payload));
    }

    [Fact]
    public async Task Write_hands_the_payload_to_the_file_system_and_replies_fuse_write_out()
    {
        var fs = new MemoryFileSystem();
        var id = fs.AddFile(1, "f", []);
        await using var kernel = FakeKernel.Start(fs);
        var data = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray();

        var reply = kernel.Call(FuseOpcode.Write, id, Bytes(new FuseWriteIn { Fh = 1, Offset = 0, Size = (uint)data.Length }), data);

        Assert.Equal(16u + 8, reply.Header.Len);
        Assert.Equal((uint)data.Length, reply.Read<FuseWriteOut>().Size);
        var back = kernel.Call(FuseOpcode.Read, id, Bytes(new FuseReadIn { Fh = 1, Size = 1 << 20 }));
        Assert.Equal(data, back.Payload.ToArray());
    }

    [Fact]
    public async Task Write_data_a_file_system_retains_stays_intact_while_later_requests_are_served()
    {
        var fs = new RetainingFileSystem();
        var id = fs.AddFile(1, "f", []);
        await using var kernel = FakeKernel.Start(fs, new FuseMountOptions { MountPoint = "/unused", ReaderThreads = 1 });
        var first = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
        var second = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 13 + 1)).ToArray();

        Assert.Equal((uint)first.Length, kernel.Call(FuseOpcode.Write, id, Bytes(new FuseWriteIn { Fh = 1, Size = (uint)first.Length }), first).Read<FuseWriteOut>().Size);

        // Many more requests, each of which would reuse a free buffer: none may be the retained one.
        for (var i = 0; i < 40; i++)
        {
            kernel.Call(FuseOpcode.Write, id, Bytes(new FuseWriteIn { Fh = 1, Offset = 1, Size = (uint)second.Length }), second);
            kernel.Call(FuseOpcode.GetAttr, id, Bytes(new FuseGetAttrIn()));
        }

        var (kept, lease) = fs.Retained[0];
        Assert.Equal(first, kept.ToArray());
        Assert.All(fs.Retained.Skip(1), r => Assert.Equal(second, r.Data.ToArray()));

        // Released: the buffer goes back to the pool, and requests are served as before.
        foreach (var (_, held) in fs.Retained)
        {
            held.Dispose();
        }

        lease.Dispose(); // a second dispose is harmless
        Assert.Equal(0, kernel.Call(FuseOpcode.GetAttr, id, Bytes(new FuseGetAttrIn())).Error);
    }

    [Fact]
    public void A_context_made_outside_a_session_has_no_request_to_retain() =>
        Assert.Null(new FuseContext(1, 0, 0, 0, CancellationToken.None).RetainRequest());

    [Fact]
    public async Task Readdir_packs_dirents_padded_to_8_bytes_and_stops_before_the_size()
    {
        var fs = new MemoryFileSystem();
        var a = fs.AddFile(1, "a", []);
        fs.AddFile(1, "name-of-nine", []);
        await using var kernel = FakeKernel.Start(fs);

        // ".", "..", "a" take 32 bytes each, "name-of-nine" 40: with size 100 only three fit.
        var reply = kernel.Call(FuseOpcode.ReadDir, 1, Bytes(new FuseReadIn { Fh = 1, Size = 100 }));

        Assert.Equal(16 + 96, reply.Bytes.Length);
        var dot = reply.Read<FuseDirent>();
        Assert.Equal((1ul, 1ul, 1u, 4u), (dot.Ino, dot.Off, dot.NameLen, dot.Type));
        Assert.Equal((byte)'.', reply.Payload[24]);
        Assert.True(reply.Payload.Slice(25, 7).ToArray().All(b => b == 0));
        var third = reply.Read<FuseDirent>(64);
        Assert.Equal((a, 3ul, 1u, 8u), (third.Ino, third.Off, third.NameLen, third.Type));

        var rest = kernel.Call(FuseOpcode.ReadDir, 1, Bytes(new FuseReadIn { Fh = 1, Offset = 3, Size = 4096 }));
        Assert.Equal(16 + 40, rest.Bytes.Length);
        Assert.Equal(12u, rest.Read<FuseDirent>().NameLen);
        Assert.Equal("name-of-nine", Encoding.ASCII.GetString(rest.Payload.Slice(24, 12)));

        var end = kernel.Call(FuseOpcode.ReadDir, 1, Bytes(new FuseReadIn { Fh = 1, Offset = 4, Size = 4096 }));
        Assert.Equal(16, end.Bytes.Length);
    }

    [Fact]
    public async Task Readdirplus_packs_entries_and_counts_lookups_except_dot_and_dotdot()
    {
        var fs = new MemoryFileSystem();
        var id = fs.AddFile(1, "file", "abc"u8.ToArray());
        await using var kernel = FakeKernel.Start(fs);

        var reply = kernel.Call(FuseOpcode.ReadDirPlus, 1, Bytes(new FuseReadIn { Fh = 1, Size = 4096 }));

        // "." and "..": align8(152 + 1) = 160, align8(152 + 2) = 160; "file": align8(156) = 160.
        Assert.Equal(16 + 480, reply.Bytes.Length);
        var dot = reply.Read<FuseDirentPlus>();
        Assert.Equal(0ul, dot.EntryOut.NodeId);
        var file = reply.Read<FuseDirentPlus>(320);
        Assert.Equal(id, file.EntryOut.NodeId);
        Assert.Equal(3ul, file.EntryOut.Attr.Size);
        Assert.Equal((id, 3ul, 4u, 8u), (file.Dirent.Ino, file.Dirent.Off, file.Dirent.NameLen, file.Dirent.Type));
        Assert.Equal("file", Encoding.ASCII.GetString(reply.Payload.Slice(320 + 152, 4)));
        Assert.Equal(1ul, fs.LookupCount(id));
    }

    [Fact]
    public async Task Forget_and_batch_forget_reach_the_file_system_with_exact_counts_and_are_never_answered()
    {
        var fs = new ForgetRecordingFileSystem();
        await using var kernel = FakeKernel.Start(fs);

        kernel.Send(FuseOpcode.Forget, 5, Bytes(new FuseForgetIn { NLookup = 3 }));
        kernel.Send(
            FuseOpcode.BatchForget,
            0,
            Bytes(new FuseBatchForgetIn { Count = 2 }),
            Bytes(new FuseForgetOne { NodeId = 6, NLookup = 7 }),
            Bytes(new FuseForgetOne { NodeId = 8, NLookup = 1 }));

        // A request after them: its reply proves the forgets were handled, and comes first.
        var after = kernel.Call(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn()));
        Assert.Equal(0, after.Error);
        Assert.Equal([(5ul, 3ul), (6ul, 7ul), (8ul, 1ul)], fs.Forgotten);
        kernel.AssertNothingWritten(Quiet);
    }

    [Fact]
    public async Task Interrupt_cancels_the_named_request_which_is_answered_EINTR()
    {
        var fs = new SlowLookupFileSystem();
        await using var kernel = FakeKernel.Start(fs);
        var unique = await InterruptASlowLookupAsync(kernel, fs);

        var reply = kernel.Reply(unique);
        Assert.Equal(-EINTR, reply.Error);
        Assert.Equal(16, reply.Bytes.Length);
        kernel.AssertNothingWritten(Quiet);
    }

    [Fact]
    public async Task An_interrupted_request_that_finishes_within_the_grace_is_answered_as_usual()
    {
        // A signal the caller handles (SIGCHLD) must not turn a quick lookup into EINTR. The grace
        // is widened here: under a loaded test run the thread pool may take longer than the usual
        // second to run the lookup's continuation, which would then rightly be cancelled.
        var fs = new SlowLookupFileSystem();
        await using var kernel = FakeKernel.Start(fs);
        kernel.Session.InterruptGrace = TimeSpan.FromSeconds(30);
        var unique = await InterruptASlowLookupAsync(kernel, fs);
        await Task.Delay(50);
        fs.Release.TrySetResult();

        var reply = kernel.Reply(unique);
        Assert.False(fs.Cancelled, "the lookup was cancelled although it finished within the grace");
        Assert.NotEqual(-EINTR, reply.Error);
        kernel.AssertNothingWritten(Quiet);
    }

    /// <summary>Sends a lookup the file system holds, then the kernel's INTERRUPT for it; returns the lookup's unique.</summary>
    private static async Task<ulong> InterruptASlowLookupAsync(FakeKernel kernel, SlowLookupFileSystem fs)
    {
        var unique = kernel.Send(FuseOpcode.Lookup, 1, Name("slow"));
        await fs.Entered.Task.WaitAsync(FakeKernel.Timeout);
        kernel.Channel.Send(Build(FuseOpcode.Interrupt, unique | 1, 0, Bytes(new FuseInterruptIn { Unique = unique })));
        return unique;
    }

    [Fact]
    public async Task Interrupt_for_a_request_not_in_flight_is_answered_EAGAIN()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var interrupt = kernel.NextUnique() | 1;
        kernel.Channel.Send(Build(FuseOpcode.Interrupt, interrupt, 0, Bytes(new FuseInterruptIn { Unique = 1234 })));

        var reply = kernel.Reply(interrupt);
        Assert.Equal(-EAGAIN, reply.Error);
        Assert.Equal(16, reply.Bytes.Length);
    }

    [Theory]
    [InlineData(31u)] // GETLK
    [InlineData(32u)] // SETLK
    [InlineData(33u)] // SETLKW
    [InlineData(37u)] // BMAP
    [InlineData(39u)] // IOCTL
    [InlineData(40u)] // POLL
    [InlineData(47u)] // COPYFILERANGE
    [InlineData(53u)] // COPYFILERANGE64
    [InlineData(52u)] // STATX
    [InlineData(51u)] // TMPFILE
    [InlineData(9999u)]
    public async Task Opcodes_outside_the_interface_are_answered_ENOSYS(uint opcode)
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var reply = kernel.Call((FuseOpcode)opcode, 1, new byte[64]);

        Assert.Equal(-ENOSYS, reply.Error);
        Assert.Equal(16, reply.Bytes.Length);
    }

    [Fact]
    public async Task A_handler_throwing_an_unexpected_exception_is_answered_EIO_and_the_session_goes_on()
    {
        await using var kernel = FakeKernel.Start(new ThrowingFileSystem());
        var failed = kernel.Call(FuseOpcode.Lookup, 1, Name("boom"));
        Assert.Equal(-EIO, failed.Error);

        var fine = kernel.Call(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn()));
        Assert.Equal(0, fine.Error);
        Assert.False(kernel.Run.IsCompleted);
    }

    [Fact]
    public async Task A_slow_handler_does_not_hold_up_the_reader()
    {
        var fs = new SlowLookupFileSystem();
        await using var kernel = FakeKernel.Start(fs);
        var slow = kernel.Send(FuseOpcode.Lookup, 1, Name("slow"));
        await fs.Entered.Task.WaitAsync(FakeKernel.Timeout);

        // One reader thread: this answer can only come while the lookup is still waiting.
        var quick = kernel.Call(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn()));
        Assert.Equal(0, quick.Error);

        fs.Release.SetResult();
        Assert.Equal(-ENOENT, kernel.Reply(slow).Error);
    }

    [Fact]
    public async Task Replies_go_to_the_descriptor_the_request_came_from()
    {
        var options = new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 3 };
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), options);
        var uniques = Enumerable.Range(0, 60).Select(_ => kernel.Send(FuseOpcode.GetAttr, 1, Bytes(new FuseGetAttrIn()))).ToList();

        foreach (var unique in uniques)
        {
            var reply = kernel.Reply(unique);
            Assert.Equal(kernel.Channel.ReadBy[unique], reply.Channel);
        }
    }

    [Fact]
    public async Task Create_replies_entry_and_open_in_144_bytes()
    {
        var fs = new MemoryFileSystem { DirectIo = true };
        await using var kernel = FakeKernel.Start(fs);

        var reply = kernel.Call(FuseOpcode.Create, 1, Bytes(new FuseCreateIn { Flags = 0x41, Mode = MemoryFileSystem.SIfReg | 0x1A4, Umask = 0x12 }), Name("new"));

        Assert.Equal(16u + 144, reply.Header.Len);
        var created = reply.Read<FuseCreateOut>();
        Assert.NotEqual(0ul, created.Entry.NodeId);
        Assert.Equal(MemoryFileSystem.SIfReg | 0x1A4, created.Entry.Attr.Mode);
        Assert.Equal(1u, created.Open.OpenFlags);
        Assert.Equal(1000u, created.Entry.Attr.Uid);
        Assert.Equal(0, kernel.Call(FuseOpcode.Lookup, 1, Name("new")).Error);
    }

    [Fact]
    public async Task Xattrs_answer_size_queries_values_and_ERANGE()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var set = kernel.Call(FuseOpcode.SetXattr, 1, Bytes(new FuseGetXattrIn { Size = 5 }), Name("user.k"), "value"u8.ToArray());
        Assert.Equal(0, set.Error);

        var size = kernel.Call(FuseOpcode.GetXattr, 1, Bytes(new FuseGetXattrIn { Size = 0 }), Name("user.k"));
        Assert.Equal(16u + 8, size.Header.Len);
        Assert.Equal(5u, size.Read<FuseGetXattrOut>().Size);

        var value = kernel.Call(FuseOpcode.GetXattr, 1, Bytes(new FuseGetXattrIn { Size = 64 }), Name("user.k"));
        Assert.Equal("value", Encoding.ASCII.GetString(value.Payload));

        var small = kernel.Call(FuseOpcode.GetXattr, 1, Bytes(new FuseGetXattrIn { Size = 2 }), Name("user.k"));
        Assert.Equal(-ERANGE, small.Error);

        var list = kernel.Call(FuseOpcode.ListXattr, 1, Bytes(new FuseGetXattrIn { Size = 64 }));
        Assert.Equal("user.k\0", Encoding.ASCII.GetString(list.Payload));
    }

    [Fact]
    public async Task Rename2_passes_both_names_the_new_parent_and_the_flags()
    {
        var fs = new MemoryFileSystem();
        fs.AddFile(1, "a", []);
        fs.AddFile(1, "b", []);
        await using var kernel = FakeKernel.Start(fs);

        var refused = kernel.Call(FuseOpcode.Rename2, 1, Bytes(new FuseRename2In { NewDir = 1, Flags = 1 }), Name("a"), Name("b"));
        Assert.Equal(-17, refused.Error);

        var renamed = kernel.Call(FuseOpcode.Rename, 1, Bytes(new FuseRenameIn { NewDir = 1 }), Name("a"), Name("c"));
        Assert.Equal(0, renamed.Error);
        Assert.Equal(16, renamed.Bytes.Length);
        Assert.Equal(0, kernel.Call(FuseOpcode.Lookup, 1, Name("c")).Error);
    }

    [Fact]
    public async Task Symlink_reads_the_name_then_the_target_and_readlink_replies_the_target()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var link = kernel.Call(FuseOpcode.Symlink, 1, Name("link"), Name("/some/where"));
        var id = link.Read<FuseEntryOut>().NodeId;

        var target = kernel.Call(FuseOpcode.ReadLink, id);
        Assert.Equal("/some/where", Encoding.UTF8.GetString(target.Payload));
        Assert.Equal(0, kernel.Call(FuseOpcode.Lookup, 1, Name("link")).Error);
    }

    [Fact]
    public async Task Statfs_replies_fuse_kstatfs()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem());
        var reply = kernel.Call(FuseOpcode.StatFs, 1);

        Assert.Equal(16u + 80, reply.Header.Len);
        var st = reply.Read<FuseKStatFs>();
        Assert.Equal((1ul << 20, 4096u, 255u), (st.Blocks, st.BlockSize, st.NameLength));
    }

    [Fact]
    public async Task Notifications_wait_for_INIT_and_carry_unique_0_the_code_and_exact_sizes()
    {
        await using var kernel = FakeKernel.Start(new MemoryFileSystem(), init: false);
        kernel.Session.InvalidateInode(42, -1, 0);
        kernel.Session.InvalidateEntry(1, "gone");
        kernel.AssertNothingWritten(Quiet);

        Assert.Equal(0, kernel.Init(FakeKernel.AllFlags, FakeKernel.AllFlags).Error);

        var inode = kernel.Reply(0);
        Assert.Equal((16u + 24, 2), (inode.Header.Len, inode.Error));
        var inval = inode.Read<FuseNotifyInvalInodeOut>();
        Assert.Equal((42ul, -1L, 0L), (inval.Ino, inval.Off, inval.Len));

        var entry = kernel.Reply(0);
        Assert.Equal((16u + 16 + 5, 3), (entry.Header.Len, entry.Error));
        var invalEntry = entry.Read<FuseNotifyInvalEntryOut>();
        Assert.Equal((1ul, 4u, 0u), (invalEntry.Parent, invalEntry.NameLen, invalEntry.Flags));
        Assert.Equal("gone\0", Encoding.ASCII.GetString(entry.Payload[16..]));
    }

    [Fact]
    public async Task The_end_of_the_session_completes_RunAsync_and_destroys_the_file_system_once()
    {
        var fs = new MemoryFileSystem();
        var kernel = FakeKernel.Start(fs);
        kernel.Channel.EndSession();

        await kernel.Run.WaitAsync(FakeKernel.Timeout);
        Assert.True(fs.Destroyed);
        await kernel.DisposeAsync();
    }

    [Fact]
    public async Task Cancelling_RunAsync_stops_the_readers_and_cancels_requests_in_flight()
    {
        var fs = new SlowLookupFileSystem();
        var channel = new FakeFuseChannel();
        await using var session = FuseSession.ForChannel(channel, new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 2 });
        using var stop = new CancellationTokenSource();
        var run = session.RunAsync(fs, stop.Token);
        channel.Send(Build(FuseOpcode.Init, 2, 0, Bytes(new FuseInitIn { Major = 7, Minor = 45 })));
        channel.Send(Build(FuseOpcode.Lookup, 4, 1, Name("slow")));
        await fs.Entered.Task.WaitAsync(FakeKernel.Timeout);

        await stop.CancelAsync();

        await run.WaitAsync(FakeKernel.Timeout);
        Assert.True(fs.Cancelled);
    }

    private sealed class HandleRecordingFileSystem : MemoryFileSystem
    {
        public ulong? LastHandle { get; private set; }

        public override ValueTask<(FuseAttr Attr, TimeSpan Timeout)> GetAttrAsync(FuseContext context, ulong nodeId, ulong? fileHandle)
        {
            LastHandle = fileHandle;
            return base.GetAttrAsync(context, nodeId, fileHandle);
        }
    }

    /// <summary>Keeps every WRITE's data in its request buffer (retained), as the ParaFS client's write-behind does.</summary>
    private sealed class RetainingFileSystem : MemoryFileSystem
    {
        public List<(ReadOnlyMemory<byte> Data, IDisposable Lease)> Retained { get; } = [];

        public override ValueTask<int> WriteAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, ReadOnlyMemory<byte> data, uint writeFlags)
        {
            Retained.Add((data, context.RetainRequest()!));
            return ValueTask.FromResult(data.Length);
        }
    }

    private sealed class ForgetRecordingFileSystem : MemoryFileSystem
    {
        public List<(ulong, ulong)> Forgotten { get; } = [];

        public override void Forget(ulong nodeId, ulong lookups) => Forgotten.Add((nodeId, lookups));
    }

    private sealed class ThrowingFileSystem : MemoryFileSystem
    {
        public override ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name) =>
            throw new InvalidOperationException("a bug in the file system");
    }

    private sealed class SlowLookupFileSystem : MemoryFileSystem
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Cancelled { get; private set; }

        public override async ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name)
        {
            if (name != "slow")
            {
                return await base.LookupAsync(context, parent, name);
            }

            Entered.TrySetResult();
            try
            {
                await Release.Task.WaitAsync(context.Cancellation);
            }
            catch (OperationCanceledException)
            {
                Cancelled = true;
                throw;
            }

            throw new FuseException(ENOENT);
        }
    }
}
