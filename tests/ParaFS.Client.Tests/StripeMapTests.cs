using FsCheck;
using FsCheck.Fluent;
using ParaFS.Common;

namespace ParaFS.Client.Tests;

public sealed class StripeMapTests
{
    private static Gen<(StripeMap Map, long Offset, int Length)> Ranges() =>
        from pages in Gen.Choose(1, 64)
        from count in Gen.Choose(1, 8)
        from offset in Gen.Choose(0, 5_000_000)
        from length in Gen.Choose(0, 600_000)
        select (new StripeMap(pages * 4096, count), (long)offset, length);

    [Fact]
    public void Every_byte_of_a_range_maps_to_exactly_one_object_offset_and_back()
    {
        Prop.ForAll(Ranges().ToArbitrary(), r =>
        {
            var (map, offset, length) = r;
            var seen = new HashSet<(int, long)>();
            var next = offset;
            foreach (var extent in map.Split(offset, length))
            {
                // Pieces come in file order, cover the range without gaps, and never cross a stripe.
                Assert.Equal(next, extent.FileOffset);
                Assert.True(extent.Length > 0);
                Assert.Equal(extent.FileOffset / map.StripeSize, (extent.FileOffset + extent.Length - 1) / map.StripeSize);
                for (var i = 0; i < extent.Length; i += 997)
                {
                    var at = (extent.ObjectIndex, extent.ObjectOffset + i);
                    Assert.True(seen.Add(at), $"byte {extent.FileOffset + i} shares {at} with another byte");
                    Assert.Equal(extent.FileOffset + i, map.FileOffset(at.ObjectIndex, at.Item2));
                    Assert.Equal(at, map.Locate(extent.FileOffset + i));
                }

                next += extent.Length;
            }

            Assert.Equal(offset + length, next);
            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Fact]
    public void Object_sizes_of_a_dense_file_add_up_to_the_file_size()
    {
        Prop.ForAll(Ranges().ToArbitrary(), r =>
        {
            var (map, size, _) = r;
            var total = Enumerable.Range(0, map.StripeCount).Sum(i => map.ObjectSize(i, size));
            Assert.Equal(size, total);
            if (size > 0)
            {
                var (last, lastOffset) = map.Locate(size - 1);
                Assert.Equal(lastOffset + 1, map.ObjectSize(last, size));
            }

            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }
}
