import sys

from labkit.emulator.server import main

sys.exit(main())
