/* A fixed-size ring buffer of bytes: the input of the SCANOSS .wfp golden vector. */
#include <stddef.h>
#include <string.h>

struct ring {
    unsigned char *data;
    size_t capacity;
    size_t head;  /* next byte to read */
    size_t tail;  /* next byte to write */
    size_t used;
};

void ring_init(struct ring *r, unsigned char *storage, size_t capacity)
{
    r->data = storage;
    r->capacity = capacity;
    r->head = 0;
    r->tail = 0;
    r->used = 0;
}

size_t ring_write(struct ring *r, const unsigned char *src, size_t len)
{
    size_t written = 0;
    while (written < len && r->used < r->capacity) {
        size_t room = r->capacity - r->tail;
        size_t chunk = len - written;
        if (chunk > room)
            chunk = room;
        if (chunk > r->capacity - r->used)
            chunk = r->capacity - r->used;
        memcpy(r->data + r->tail, src + written, chunk);
        r->tail = (r->tail + chunk) % r->capacity;
        r->used += chunk;
        written += chunk;
    }
    return written;
}

size_t ring_read(struct ring *r, unsigned char *dst, size_t len)
{
    size_t taken = 0;
    while (taken < len && r->used > 0) {
        size_t run = r->capacity - r->head;
        size_t chunk = len - taken;
        if (chunk > run)
            chunk = run;
        if (chunk > r->used)
            chunk = r->used;
        memcpy(dst + taken, r->data + r->head, chunk);
        r->head = (r->head + chunk) % r->capacity;
        r->used -= chunk;
        taken += chunk;
    }
    return taken;
}

int ring_is_empty(const struct ring *r)
{
    return r->used == 0;
}

int ring_is_full(const struct ring *r)
{
    return r->used == r->capacity;
}
