import sys

from selfdev.cli import main

sys.exit(main())
