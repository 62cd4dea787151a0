module github.com/standin/standin

go 1.26
