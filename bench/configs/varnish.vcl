# Varnish for the cache scenarios, in front of the origin: the builtin VCL
# (it stores what the origin's Cache-Control allows, here an hour) and one
# field, X-Cache, that tells the harness a hit from a miss.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "{{ORIGIN_PORT}}";
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "hit";
    } else {
        set resp.http.X-Cache = "miss";
    }
}
