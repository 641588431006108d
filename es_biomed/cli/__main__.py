from es_biomed.cli import main

main()
