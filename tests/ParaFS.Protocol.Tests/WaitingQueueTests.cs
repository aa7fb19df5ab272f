using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class WaitingQueueTests
{
    [Fact]
    public void Items_come_out_in_order_and_a_waiting_consumer_wakes_for_the_next()
    {
        var queue = new WaitingQueue<string>();
        Assert.True(queue.TryAdd("a"));
        Assert.True(queue.TryAdd("b"));
        Assert.Equal("a", queue.Take());
        Assert.Equal("b", queue.Take());

        string? taken = null;
        var consumer = new Thread(() => taken = queue.Take());
        consumer.Start();
        Assert.False(consumer.Join(100)); // nothing queued: it sleeps
        Assert.True(queue.TryAdd("c"));
        Assert.True(consumer.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal("c", taken);
    }

    [Fact]
    public void Completing_drains_what_is_queued_then_ends_the_consumer_and_refuses_more()
    {
        var queue = new WaitingQueue<string>();
        queue.TryAdd("left");
        queue.Complete();
        Assert.False(queue.TryAdd("late"));
        Assert.Equal("left", queue.Take());
        Assert.Null(queue.Take());
    }

    [Fact]
    public void Completing_wakes_a_consumer_that_waits_on_an_empty_queue()
    {
        var queue = new WaitingQueue<string>();
        var ended = false;
        var consumer = new Thread(() => ended = queue.Take() is null);
        consumer.Start();
        Assert.False(consumer.Join(100));
        queue.Complete();
        Assert.True(consumer.Join(TimeSpan.FromSeconds(10)));
        Assert.True(ended);
    }

    [Fact]
    public void Every_item_of_many_producers_arrives_exactly_once()
    {
        var queue = new WaitingQueue<object>();
        const int Producers = 4, PerProducer = 5000;
        var seen = new HashSet<int>();
        var duplicates = 0;
        var refused = 0;
        var consumer = new Thread(() =>
        {
            while (queue.Take() is int[] item)
            {
                duplicates += seen.Add(item[0]) ? 0 : 1;
            }
        });
        consumer.Start();
        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                if (!queue.TryAdd(new[] { (p * PerProducer) + i }))
                {
                    Interlocked.Increment(ref refused);
                }
            }
        })).ToList();
        producers.ForEach(t => t.Start());
        producers.ForEach(t => t.Join());
        queue.Complete();
        Assert.True(consumer.Join(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, refused);
        Assert.Equal(0, duplicates);
        Assert.Equal(Producers * PerProducer, seen.Count);
    }
}
