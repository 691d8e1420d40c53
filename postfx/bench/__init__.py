"""`postfx bench`: what the command needs ships here, in the package.

    postfx bench --quick                 # a tiny grid, under a minute on llvmpipe
    postfx bench                         # depth 1-6 x ngf 8/16/32 x 256^2 ... 4K, GL kernels vs torch
    postfx bench --whole-frame           # plus demo scene + pass, fps per depth at 720p / 1080p
    postfx bench --ladder                # the conv kernel ladder (ladder.py)

command.py parses the arguments and runs the grid (grid.py) of runners
(runners.py) against the compute ceiling (ceiling.py), and report.py writes the
tables. The development scripts in the repository's benchmarks/ folder import
this package like any user code.
"""
