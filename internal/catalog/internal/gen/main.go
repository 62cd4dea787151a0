// Command gen converts the research reference providers.json into the
// catalog's data file and docs/PROVIDERS.md. Run it from the catalog
// package directory (go generate does):
//
//	go run ./internal/gen ../../../shared/reference/providers.json
//
// Both outputs are committed; catalog's tests check they are up to date.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/standin/standin/internal/catalog/internal/refconv"
)

func main() {
	out := flag.String("out", "providers.json", "data file to write")
	docs := flag.String("docs", "../../docs/PROVIDERS.md", "provider table to write (empty: none)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: gen [-out providers.json] [-docs PROVIDERS.md] reference/providers.json\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *docs); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func run(refPath, out, docs string) error {
	ref, err := os.ReadFile(refPath)
	if err != nil {
		return fmt.Errorf("read reference: %w", err)
	}
	f, err := refconv.Convert(ref)
	if err != nil {
		return fmt.Errorf("convert %s: %w", refPath, err)
	}
	data, err := refconv.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	if docs != "" {
		if err := os.WriteFile(docs, refconv.Markdown(f), 0o644); err != nil {
			return fmt.Errorf("write docs: %w", err)
		}
	}
	return nil
}
