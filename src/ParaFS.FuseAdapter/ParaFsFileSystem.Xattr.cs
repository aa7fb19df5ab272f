using System.Globalization;
using System.Text;
using ParaFS.Common;
using ParaFS.Fuse;
using ParaFS.Protocol.Mds;

namespace ParaFS.FuseAdapter;

public sealed partial class ParaFsFileSystem
{
    public async ValueTask SetXattrAsync(FuseContext context, ulong nodeId, string name, ReadOnlyMemory<byte> value, int flags)
    {
        try
        {
            if (name == LayoutXattr)
            {
                await client.SetStripeAsync(_callers.For(context), nodeId, ParseLayout(Encoding.UTF8.GetString(value.Span)), NotInterruptible).ConfigureAwait(false);
                return;
            }

            await client.SetXattrAsync(_callers.For(context), nodeId, name, value, (uint)flags, NotInterruptible).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<int> GetXattrAsync(FuseContext context, ulong nodeId, string name, Memory<byte> destination)
    {
        byte[] value;
        try
        {
            value = name == LayoutXattr
                ? Encoding.UTF8.GetBytes(FormatLayout(await client.GetStripeAsync(nodeId, context.Cancellation).ConfigureAwait(false)))
                : await client.GetXattrAsync(_callers.For(context), nodeId, name, context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }

        return CopyOut(value, destination, name);
    }

    /// <summary>The stored names; the virtual parafs.layout is not listed (as CephFS does not list ceph.*), only answered.</summary>
    public async ValueTask<int> ListXattrAsync(FuseContext context, ulong nodeId, Memory<byte> destination)
    {
        IReadOnlyList<string> names;
        try
        {
            names = await client.ListXattrAsync(_callers.For(context), nodeId, context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }

        var packed = new StringBuilder();
        foreach (var n in names)
        {
            packed.Append(n).Append('\0');
        }

        return CopyOut(Encoding.UTF8.GetBytes(packed.ToString()), destination, "the list of names");
    }

    public async ValueTask RemoveXattrAsync(FuseContext context, ulong nodeId, string name)
    {
        if (name == LayoutXattr)
        {
            throw new FuseException(EOPNOTSUPP, "parafs.layout cannot be removed; set another layout instead");
        }

        try
        {
            await client.RemoveXattrAsync(_callers.For(context), nodeId, name, NotInterruptible).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    /// <summary>getxattr(2) size rules: an empty buffer asks for the size; a small one is ERANGE.</summary>
    private static int CopyOut(byte[] value, Memory<byte> destination, string what)
    {
        if (destination.Length == 0)
        {
            return value.Length;
        }

        if (destination.Length < value.Length)
        {
            throw new FuseException(ERANGE, $"{what} is {value.Length} bytes; the buffer has {destination.Length}");
        }

        value.CopyTo(destination);
        return value.Length;
    }

    /// <summary>"stripe_size=1048576 stripe_count=4 pool=default generation=1 objects=3:0x1,4:0x1" for a file; a directory shows its default.</summary>
    private static string FormatLayout(GetStripeReply reply)
    {
        if (reply.Layout is { } l)
        {
            var objects = string.Join(',', l.Objects.Select(o => $"{o.TargetId}:0x{o.ObjectId:x}"));
            return $"stripe_size={l.StripeSize} stripe_count={l.StripeCount} pool={l.Pool} generation={l.Generation} objects={objects}";
        }

        if (reply.Policy is { } p)
        {
            return $"stripe_size={p.StripeSize} stripe_count={p.StripeCount} pool={p.Pool}";
        }

        throw new FuseException(ENODATA, "this inode has no layout (only files and directories do)");
    }

    /// <summary>Accepts "stripe_size=N stripe_count=N pool=P" in any order and subset (spaces or commas between).</summary>
    private static LayoutPolicy ParseLayout(string text)
    {
        var policy = new LayoutPolicy();
        foreach (var part in text.Split([' ', ',', '\n', '\0'], StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length != 2)
            {
                throw new FuseException(EINVAL, $"parafs.layout: '{part}' is not key=value (stripe_size, stripe_count, pool)");
            }

            switch (kv[0])
            {
                case "stripe_size" when uint.TryParse(kv[1], NumberStyles.None, CultureInfo.InvariantCulture, out var size):
                    policy.StripeSize = size;
                    break;
                case "stripe_count" when int.TryParse(kv[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var count):
                    policy.StripeCount = count;
                    break;
                case "pool":
                    policy.Pool = kv[1];
                    break;
                default:
                    throw new FuseException(EINVAL, $"parafs.layout: '{part}' is not stripe_size=N, stripe_count=N or pool=NAME");
            }
        }

        return policy;
    }
}
