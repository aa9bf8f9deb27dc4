import sys

from lkload.cli.main import main

sys.exit(main())
