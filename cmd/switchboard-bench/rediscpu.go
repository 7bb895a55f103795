package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisCPU is the CPU time the Redis at url has used so far, system plus
// user (INFO CPU's used_cpu_sys and used_cpu_user); 0 without a url. It is
// the whole server's: a Redis that serves others during a measurement
// charges their work to it too.
func redisCPU(ctx context.Context, url string) (time.Duration, error) {
	if url == "" {
		return 0, nil
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return 0, fmt.Errorf("--redis: %w", err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO CPU: %w", err)
	}
	return parseRedisCPU(info)
}

// parseRedisCPU adds used_cpu_sys and used_cpu_user (seconds) of an INFO
// CPU answer.
func parseRedisCPU(info string) (time.Duration, error) {
	var total float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("redis INFO CPU: %s: %w", k, err)
		}
		total += s
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("redis INFO CPU: no used_cpu_sys and used_cpu_user in %q", info)
	}
	return time.Duration(total * float64(time.Second)), nil
}
