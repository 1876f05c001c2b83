import sys

from pawtf.cli import main

sys.exit(main())
