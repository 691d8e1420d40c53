"""postfx's benchmarks, shipped inside the wheel as postfx.benchmarks.

    postfx bench --quick                 # a tiny grid, under a minute on llvmpipe
    postfx bench                         # depth 1-6 x ngf 8/16/32 x 256^2 ... 4K, GL kernels vs torch
    postfx bench --whole-frame           # plus demo scene + pass, fps per depth at 720p / 1080p
    postfx bench --ladder                # the conv kernel ladder (kernel_ladder.py)

Each module also runs as a script from a checkout (`python3 benchmarks/bench.py`,
`python3 benchmarks/bench_runtime.py`, ...): siblings are then imported as
top-level modules and the checkout's postfx comes first on sys.path.
"""
