// Every test here runs a whole cluster and a kernel mount (some several); on a 2-core CI machine
// running them side by side only makes each one slower and its timings (stalls) meaningless.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
