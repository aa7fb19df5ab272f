using ParaFS.Mds.Store;

namespace ParaFS.Mds.Tests;

/// <summary>A store that passes every call on to <paramref name="inner"/>; a test overrides what it watches or changes.</summary>
internal abstract class DelegatingStore(IMetadataStore inner) : IMetadataStore
{
    protected IMetadataStore Inner => inner;

    public string Kind => inner.Kind;

    public virtual Task<T> ReadAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default) => inner.ReadAsync(work, cancellationToken);

    public virtual Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default) => inner.WriteAsync(work, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
