using Google.Protobuf;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>
/// A real MDS serving on loopback, on SQLite in a temporary directory or on a PostgreSQL
/// database of its own (created for it, dropped after).
/// </summary>
public sealed class MdsFixture : IAsyncDisposable
{
    private MdsFixture(string directory, TestDatabase? database, MdsServer server)
    {
        Directory = directory;
        Database = database;
        Server = server;
    }

    public string Directory { get; }

    /// <summary>The PostgreSQL database, or null on SQLite.</summary>
    public TestDatabase? Database { get; }

    public MdsServer Server { get; private set; }

    public static async Task<MdsFixture> StartAsync(TestStore store = TestStore.Sqlite, string? directory = null, TimeSpan? heartbeat = null, TimeSpan? lease = null)
    {
        directory ??= Path.Combine(Path.GetTempPath(), $"parafs-mds-{Guid.NewGuid():N}");
        var database = store == TestStore.Postgres ? await TestPostgres.CreateDatabaseAsync() : null;
        try
        {
            var server = await MdsServer.StartAsync(Options(directory, "127.0.0.1:0", heartbeat, lease, database?.ConnectionString));
            return new MdsFixture(directory, database, server);
        }
        catch
        {
            if (database is not null)
            {
                await database.DisposeAsync();
            }

            throw;
        }
    }

    public static MdsOptions Options(string directory, string listen, TimeSpan? heartbeat = null, TimeSpan? lease = null, string? store = null) => new()
    {
        DataDirectory = directory,
        Store = store,
        Listen = RpcEndpoint.Parse(listen),
        FileSystemName = "testfs",
        // Fake targets do not heartbeat on their own: a long interval keeps them up unless a test asks otherwise.
        HeartbeatInterval = heartbeat ?? TimeSpan.FromSeconds(30),
        SessionLease = lease ?? TimeSpan.FromSeconds(30),
    };

    /// <summary>Stops the MDS and starts it again on the same data and port.</summary>
    public async Task RestartAsync()
    {
        var endpoint = Server.Endpoint.Text;
        var heartbeat = Server.HeartbeatInterval;
        var lease = Server.Sessions.Lease;
        await Server.DisposeAsync();
        Server = await MdsServer.StartAsync(Options(Directory, endpoint, heartbeat, lease, Database?.ConnectionString));
    }

    public async Task<TestClient> ClientAsync(uint uid = 0, uint gid = 0, Func<RpcPush, RpcClientConnection, ValueTask>? onPush = null) =>
        await TestClient.ConnectAsync(Server.Endpoint, new Caller { Uid = uid, Gid = gid }, onPush);

    /// <summary>Registers <paramref name="count"/> targets in a pool, each backed by a recording fake OST.</summary>
    public async Task<List<FakeOst>> AddTargetsAsync(int count, string pool = "default", long freeBytes = 1L << 40)
    {
        var list = new List<FakeOst>();
        for (var i = 0; i < count; i++)
        {
            list.Add(await FakeOst.StartAsync(Server, pool, freeBytes));
        }

        return list;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        if (Database is not null)
        {
            await Database.DisposeAsync();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A client of the MDS protocol with one caller identity and a session.</summary>
public sealed class TestClient : IAsyncDisposable
{
    private TestClient(RpcClient rpc, Caller caller, ulong session)
    {
        Rpc = rpc;
        Caller = caller;
        SessionId = session;
    }

    public RpcClient Rpc { get; }

    public Caller Caller { get; set; }

    public ulong SessionId { get; }

    public static async Task<TestClient> ConnectAsync(RpcEndpoint endpoint, Caller caller, Func<RpcPush, RpcClientConnection, ValueTask>? onPush)
    {
        var rpc = new RpcClient(endpoint, new RpcClientOptions { ConnectionsPerServer = 1, PushHandler = onPush });
        var session = await rpc.CallAsync(Methods.MdsSession, new SessionRequest { ClientName = "test" }, SessionReply.Parser);
        return new TestClient(rpc, caller, session.SessionId);
    }

    public Task<T> CallAsync<T>(uint method, IMessage request, MessageParser<T> parser)
        where T : IMessage<T> => Rpc.CallAsync(method, request, parser);

    public async Task CallAsync(uint method, IMessage request)
    {
        using var reply = await Rpc.CallAsync(method, request);
    }

    public Task<AttrReply> LookupAsync(ulong parent, string name) =>
        CallAsync(Methods.MdsLookup, new LookupRequest { Caller = Caller, Parent = parent, Name = name }, AttrReply.Parser);

    public Task<AttrReply> GetAttrAsync(ulong ino) =>
        CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Caller = Caller, Ino = ino }, AttrReply.Parser);

    public async Task<Attr> CreateAsync(ulong parent, string name, FileType type = FileType.Regular, uint mode = 0x1A4, bool exclusive = true)
    {
        var reply = await CallAsync(Methods.MdsCreate, new CreateRequest { Caller = Caller, Parent = parent, Name = name, Type = type, Mode = mode, Exclusive = exclusive }, EntryReply.Parser);
        return reply.Attr;
    }

    public async Task<Attr> SymlinkAsync(ulong parent, string name, string target) =>
        (await CallAsync(Methods.MdsCreate, new CreateRequest { Caller = Caller, Parent = parent, Name = name, Type = FileType.Symlink, SymlinkTarget = target }, EntryReply.Parser)).Attr;

    public Task<Attr> MkdirAsync(ulong parent, string name, uint mode = 0x1ED) => CreateAsync(parent, name, FileType.Directory, mode);

    public Task<EntryReply> CreateOpenAsync(ulong parent, string name, uint flags = 2) =>
        CallAsync(Methods.MdsCreate, new CreateRequest { Caller = Caller, Parent = parent, Name = name, Type = FileType.Regular, Mode = 0x1A4, Open = true, OpenFlags = flags }, EntryReply.Parser);

    public Task<OpenReply> OpenAsync(ulong ino, uint flags) =>
        CallAsync(Methods.MdsOpen, new OpenRequest { Caller = Caller, Ino = ino, Flags = flags }, OpenReply.Parser);

    public Task CloseAsync(ulong handle, SizeReport? size = null) => CallAsync(Methods.MdsClose, new CloseRequest { Handle = handle, Size = size });

    public Task UnlinkAsync(ulong parent, string name) => CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = Caller, Parent = parent, Name = name });

    public Task RmdirAsync(ulong parent, string name) => CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = Caller, Parent = parent, Name = name, Directory = true });

    public Task RenameAsync(ulong parent, string name, ulong newParent, string newName, uint flags = 0) =>
        CallAsync(Methods.MdsRename, new RenameRequest { Caller = Caller, Parent = parent, Name = name, NewParent = newParent, NewName = newName, Flags = flags });

    public Task<AttrReply> LinkAsync(ulong ino, ulong newParent, string newName) =>
        CallAsync(Methods.MdsLink, new LinkRequest { Caller = Caller, Ino = ino, NewParent = newParent, NewName = newName }, AttrReply.Parser);

    public Task<AttrReply> SetAttrAsync(SetAttrRequest request)
    {
        request.Caller = Caller;
        return CallAsync(Methods.MdsSetAttr, request, AttrReply.Parser);
    }

    public async Task<List<DirEntry>> ReaddirAllAsync(ulong ino, uint limit = 100)
    {
        var all = new List<DirEntry>();
        ulong cookie = 0;
        while (true)
        {
            var page = await CallAsync(Methods.MdsReaddir, new ReaddirRequest { Caller = Caller, Ino = ino, Cookie = cookie, Limit = limit, Plus = true }, ReaddirReply.Parser);
            all.AddRange(page.Entries);
            if (!page.More || page.Entries.Count == 0)
            {
                return all;
            }

            cookie = page.Entries[^1].Cookie;
        }
    }

    public Task SetXattrAsync(ulong ino, string name, byte[] value, uint flags = 0) =>
        CallAsync(Methods.MdsSetXattr, new XattrRequest { Caller = Caller, Ino = ino, Name = name, Value = ByteString.CopyFrom(value), Flags = flags });

    public async Task<byte[]> GetXattrAsync(ulong ino, string name) =>
        (await CallAsync(Methods.MdsGetXattr, new XattrRequest { Caller = Caller, Ino = ino, Name = name }, XattrReply.Parser)).Value.ToByteArray();

    public ValueTask DisposeAsync() => Rpc.DisposeAsync();
}
