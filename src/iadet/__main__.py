import sys

from iadet.cli import main

sys.exit(main())
