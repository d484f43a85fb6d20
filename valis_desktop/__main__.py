from valis_desktop.cli import main

raise SystemExit(main())
