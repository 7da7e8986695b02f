from psyprobe.cli import main

main()
