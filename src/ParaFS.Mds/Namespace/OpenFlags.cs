namespace ParaFS.Mds.Namespace;

/// <summary>open(2) flag values (asm-generic/fcntl.h).</summary>
public static class OpenFlags
{
    public const uint AccessMode = 3;
    public const uint ReadOnly = 0;
    public const uint WriteOnly = 1;
    public const uint ReadWrite = 2;
    public const uint Create = 0x40;
    public const uint Exclusive = 0x80;
    public const uint Truncate = 0x200;
    public const uint Append = 0x400;
}
