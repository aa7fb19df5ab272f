using BenchmarkDotNet.Running;

// scripts/bench-micro [BenchmarkDotNet options], e.g. --filter '*Stripe*' or --job short
BenchmarkSwitcher.FromAssembly(typeof(ParaFS.Microbench.StripeMapBenchmarks).Assembly).Run(args);
