"""``python -m enterprise_tools.sns_simulator``: the archive simulator's command line.

The simulator is the ``enterprise_tools.simulator`` package (import its names from there); this
module only runs its command line, under the name the README and users' scripts call.
"""

if __name__ == "__main__":
    import sys

    from enterprise_tools.simulator.cli import main

    sys.exit(main())
