{
  "targets": [
    {
      "target_name": "recgw_page_cache",
      "sources": ["page_cache.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
