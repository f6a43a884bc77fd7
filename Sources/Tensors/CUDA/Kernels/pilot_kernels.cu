// PILOT-Swift CUDA kernels, compiled at run time with NVRTC (CUDABackend).
//
// Every kernel is a template over the storage type T (float, half_t,
// bf16_t) and computes in float; `extern "C"` entry points are named
// NAME_f32, NAME_f16 and NAME_bf16. No CUDA header is included: the half
// and bfloat16 conversions are single PTX instructions (sm_80 and later),
// so the sources compile with nothing but NVRTC itself.
//
// Shapes and strides travel in small structs passed by value; sizes are
// 64-bit. Launch shapes are chosen on the host (CUDALaunch.swift).

typedef unsigned short u16;
typedef long long i64;

struct half_t { u16 x; };
struct bf16_t { u16 x; };

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const half_t* p) {
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p->x)); return f;
}
__device__ __forceinline__ float ld(const bf16_t* p) { return __int_as_float(((unsigned int)p->x) << 16); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(half_t* p, float v) {
    u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); p->x = h;
}
__device__ __forceinline__ void st(bf16_t* p, float v) {
    u16 h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v)); p->x = h;
}

#define MAXDIMS 8
#define NEG_INF __int_as_float(0xff800000)

// Output sizes plus one stride set per operand (0 where an operand broadcasts).
struct Dims {
    int rank;
    i64 size[MAXDIMS];
    i64 sa[MAXDIMS];
    i64 sb[MAXDIMS];
};

// Kept (output) and reduced index spaces of a sum over arbitrary axes.
struct ReduceDims {
    int keptRank;
    int reducedRank;
    i64 keptSize[MAXDIMS];
    i64 keptStride[MAXDIMS];
    i64 reducedSize[MAXDIMS];
    i64 reducedStride[MAXDIMS];
    i64 reducedCount;
};

#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

struct SumOp { __device__ static float apply(float a, float b) { return a + b; } };
struct MaxOp { __device__ static float apply(float a, float b) { return fmaxf(a, b); } };

__device__ __forceinline__ float warp_reduce(float v, SumOp) { return warp_sum(v); }
__device__ __forceinline__ float warp_reduce(float v, MaxOp) { return warp_max(v); }

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024);
// every thread gets the result. `identity` fills the missing warps. Each
// instantiation has its own shared slots, and the leading barrier lets a
// block call it again right after reading the previous result.
template <typename Op> __device__ float block_reduce(float v, float identity) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_reduce(v, Op());
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < warps ? part[lane] : identity;
        w = warp_reduce(w, Op());
        if (lane == 0) total = w;
    }
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_sum(float v) { return block_reduce<SumOp>(v, 0.0f); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<MaxOp>(v, NEG_INF); }

// ---------------------------------------------------------------- conversion

template <typename T> __device__ void to_float_impl(const T* x, float* y, i64 n) { GRID_STRIDE(i, n) y[i] = ld(x + i); }
template <typename T> __device__ void from_float_impl(const float* x, T* y, i64 n) { GRID_STRIDE(i, n) st(y + i, x[i]); }

// ---------------------------------------------------------------- layout

// y[i] = x[offset(i)] with the offsets of Dims.sa (permute, broadcast).
template <typename T> __device__ void gather_impl(const T* x, T* y, i64 n, Dims d) {
    GRID_STRIDE(i, n) {
        i64 rest = i, off = 0;
        for (int k = d.rank - 1; k >= 0; --k) {
            i64 idx = rest % d.size[k];
            rest /= d.size[k];
            off += idx * d.sa[k];
        }
        y[i] = x[off];
    }
}

// y[o, dstStart + r, i] = x[o, srcStart + r, i] for r < rows, i < inner.
template <typename T> __device__ void copy_rows_impl(const T* x, T* y, i64 outer, i64 rows, i64 inner,
                                                     i64 srcRows, i64 srcStart, i64 dstRows, i64 dstStart) {
    i64 n = outer * rows * inner;
    GRID_STRIDE(i, n) {
        i64 in = i % inner, r = (i / inner) % rows, o = i / (inner * rows);
        y[(o * dstRows + dstStart + r) * inner + in] = x[(o * srcRows + srcStart + r) * inner + in];
    }
}

// ---------------------------------------------------------------- elementwise

enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3 };

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

template <typename T> __device__ void binary_same_impl(const T* a, const T* b, T* y, i64 n, int op) {
    GRID_STRIDE(i, n) st(y + i, apply_binary(op, ld(a + i), ld(b + i)));
}

template <typename T> __device__ void binary_broadcast_impl(const T* a, const T* b, T* y, i64 n, int op, Dims d) {
    GRID_STRIDE(i, n) {
        i64 rest = i, oa = 0, ob = 0;
        for (int k = d.rank - 1; k >= 0; --k) {
            i64 idx = rest % d.size[k];
            rest /= d.size[k];
            oa += idx * d.sa[k];
            ob += idx * d.sb[k];
        }
        st(y + i, apply_binary(op, ld(a + oa), ld(b + ob)));
    }
}

enum {
    U_NEG = 0, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_ABS, U_RELU, U_SIGMOID, U_TANH, U_SILU,
    U_GELU, U_GELU_TANH, U_QUICK_GELU, U_SCALE, U_SHIFT, U_POW, U_CLAMP
};

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu_(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }
__device__ __forceinline__ float gelu_slope_(float x) {
    return 0.5f * erfcf(-x * 0.70710678118654752f) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}
__device__ __forceinline__ float gelu_tanh_inner_(float x) { return 0.7978845608f * (x + 0.044715f * x * x * x); }

__device__ __forceinline__ float apply_unary(int op, float x, float c0, float c1) {
    switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_SQUARE: return x * x;
    case U_ABS: return fabsf(x);
    case U_RELU: return fmaxf(x, 0.0f);
    case U_SIGMOID: return sigmoidf_(x);
    case U_TANH: return tanhf(x);
    case U_SILU: return x / (1.0f + expf(-x));
    case U_GELU: return gelu_(x);
    case U_GELU_TANH: return 0.5f * x * (1.0f + tanhf(gelu_tanh_inner_(x)));
    case U_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case U_SCALE: return x * c0;
    case U_SHIFT: return x + c0;
    case U_POW: return powf(x, c0);
    default: return fminf(fmaxf(x, c0), c1);
    }
}

__device__ __forceinline__ float apply_unary_backward(int op, float x, float g, float c0, float c1) {
    switch (op) {
    case U_NEG: return -g;
    case U_EXP: return g * expf(x);
    case U_LOG: return g / x;
    case U_SQRT: return g * 0.5f / sqrtf(x);
    case U_RSQRT: return g * -0.5f / (x * sqrtf(x));
    case U_SQUARE: return g * 2.0f * x;
    case U_ABS: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case U_RELU: return x > 0.0f ? g : 0.0f;
    case U_SIGMOID: { float s = sigmoidf_(x); return g * s * (1.0f - s); }
    case U_TANH: { float t = tanhf(x); return g * (1.0f - t * t); }
    case U_SILU: { float s = sigmoidf_(x); return g * s * (1.0f + x * (1.0f - s)); }
    case U_GELU: return g * gelu_slope_(x);
    case U_GELU_TANH: {
        float t = tanhf(gelu_tanh_inner_(x));
        float du = 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
        return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
    case U_QUICK_GELU: { float s = sigmoidf_(1.702f * x); return g * (s + 1.702f * x * s * (1.0f - s)); }
    case U_SCALE: return g * c0;
    case U_SHIFT: return g;
    case U_POW: return g * c0 * powf(x, c0 - 1.0f);
    default: return (x > c0 && x < c1) ? g : 0.0f;
    }
}

template <typename T> __device__ void unary_impl(const T* x, T* y, i64 n, int op, float c0, float c1) {
    GRID_STRIDE(i, n) st(y + i, apply_unary(op, ld(x + i), c0, c1));
}

template <typename T> __device__ void unary_backward_impl(const T* x, const T* g, T* dx, i64 n, int op, float c0, float c1) {
    GRID_STRIDE(i, n) st(dx + i, apply_unary_backward(op, ld(x + i), ld(g + i), c0, c1));
}

// x [rows, 2n] = h | g  →  y [rows, n] = h · gelu(g)
template <typename T> __device__ void geglu_impl(const T* x, T* y, i64 rows, i64 n) {
    GRID_STRIDE(i, rows * n) {
        i64 r = i / n, c = i % n;
        float h = ld(x + r * 2 * n + c), g = ld(x + r * 2 * n + n + c);
        st(y + i, h * gelu_(g));
    }
}

template <typename T> __device__ void geglu_backward_impl(const T* x, const T* dy, T* dx, i64 rows, i64 n) {
    GRID_STRIDE(i, rows * n) {
        i64 r = i / n, c = i % n;
        float h = ld(x + r * 2 * n + c), g = ld(x + r * 2 * n + n + c), d = ld(dy + i);
        st(dx + r * 2 * n + c, d * gelu_(g));
        st(dx + r * 2 * n + n + c, d * h * gelu_slope_(g));
    }
}

// ---------------------------------------------------------------- reductions

__device__ __forceinline__ i64 kept_offset(const ReduceDims& d, i64 o) {
    i64 off = 0;
    for (int k = d.keptRank - 1; k >= 0; --k) {
        off += (o % d.keptSize[k]) * d.keptStride[k];
        o /= d.keptSize[k];
    }
    return off;
}

__device__ __forceinline__ i64 reduced_offset(const ReduceDims& d, i64 r) {
    i64 off = 0;
    for (int k = d.reducedRank - 1; k >= 0; --k) {
        off += (r % d.reducedSize[k]) * d.reducedStride[k];
        r /= d.reducedSize[k];
    }
    return off;
}

// One block per output element.
template <typename T> __device__ void sum_block_impl(const T* x, T* y, i64 outputs, ReduceDims d) {
    for (i64 o = blockIdx.x; o < outputs; o += gridDim.x) {
        i64 base = kept_offset(d, o);
        float acc = 0.0f;
        for (i64 r = threadIdx.x; r < d.reducedCount; r += blockDim.x) acc += ld(x + base + reduced_offset(d, r));
        acc = block_sum(acc);
        if (threadIdx.x == 0) st(y + o, acc);
    }
}

// One thread per output element (short reductions).
template <typename T> __device__ void sum_thread_impl(const T* x, T* y, i64 outputs, ReduceDims d) {
    GRID_STRIDE(o, outputs) {
        i64 base = kept_offset(d, o);
        float acc = 0.0f;
        for (i64 r = 0; r < d.reducedCount; ++r) acc += ld(x + base + reduced_offset(d, r));
        st(y + o, acc);
    }
}

// x viewed as [outer, n, inner]: y[o, i] = max_k x[o, k, i].
template <typename T> __device__ void max_axis_impl(const T* x, T* y, i64 outer, i64 n, i64 inner) {
    GRID_STRIDE(i, outer * inner) {
        i64 o = i / inner, in = i % inner;
        float m = NEG_INF;
        for (i64 k = 0; k < n; ++k) m = fmaxf(m, ld(x + (o * n + k) * inner + in));
        st(y + i, m);
    }
}

// y[o, c, i] += bias[c]
template <typename T> __device__ void add_bias_impl(T* y, const T* bias, i64 outer, i64 channels, i64 inner) {
    GRID_STRIDE(i, outer * channels * inner) {
        i64 c = (i / inner) % channels;
        st(y + i, ld(y + i) + ld(bias + c));
    }
}

// ---------------------------------------------------------------- convolution

struct ConvGeometry {
    int n, c, h, w;        // input
    int kh, kw, sh, sw, ph, pw;
    int oh, ow;            // output
};

// col [n][c·kh·kw][oh·ow] from x [n][c][h][w] (zero padding), for images
// first ..< first + count.
template <typename T> __device__ void im2col_impl(const T* x, T* col, ConvGeometry g, int first, int count) {
    i64 plane = (i64)g.oh * g.ow, rowsPerImage = (i64)g.c * g.kh * g.kw;
    i64 total = (i64)count * rowsPerImage * plane;
    GRID_STRIDE(i, total) {
        i64 p = i % plane, row = (i / plane) % rowsPerImage, img = i / (plane * rowsPerImage);
        int ox = (int)(p % g.ow), oy = (int)(p / g.ow);
        int kx = (int)(row % g.kw), ky = (int)((row / g.kw) % g.kh), ch = (int)(row / ((i64)g.kw * g.kh));
        int iy = oy * g.sh - g.ph + ky, ix = ox * g.sw - g.pw + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
            v = ld(x + (((i64)(first + img) * g.c + ch) * g.h + iy) * g.w + ix);
        st(col + i, v);
    }
}

// dx [n][c][h][w] (images first ..< first + count) from col [n][c·kh·kw][oh·ow]: each
// input element sums the columns that read it (a gather: no atomics).
template <typename T> __device__ void col2im_impl(const T* col, T* dx, ConvGeometry g, int first, int count) {
    i64 plane = (i64)g.oh * g.ow, rowsPerImage = (i64)g.c * g.kh * g.kw;
    i64 total = (i64)count * g.c * g.h * g.w;
    GRID_STRIDE(i, total) {
        int ix = (int)(i % g.w), iy = (int)((i / g.w) % g.h);
        i64 ch = (i / ((i64)g.w * g.h)) % g.c, img = i / ((i64)g.w * g.h * g.c);
        float acc = 0.0f;
        for (int ky = 0; ky < g.kh; ++ky) {
            int ty = iy + g.ph - ky;
            if (ty < 0 || ty % g.sh != 0) continue;
            int oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
                int tx = ix + g.pw - kx;
                if (tx < 0 || tx % g.sw != 0) continue;
                int ox = tx / g.sw;
                if (ox >= g.ow) continue;
                i64 row = (ch * g.kh + ky) * g.kw + kx;
                acc += ld(col + (img * rowsPerImage + row) * plane + (i64)oy * g.ow + ox);
            }
        }
        st(dx + (((i64)(first) * g.c) * g.h * g.w) + i, acc);
    }
}

// ---------------------------------------------------------------- normalisation

// One block per (image, group); x [n][c][hw], groups of c/groups channels.
template <typename T> __device__ void group_norm_impl(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                                                      int n, int c, i64 hw, int groups, float eps, int hasWeight, int hasBias) {
    int cpg = c / groups;
    i64 count = (i64)cpg * hw;
    for (i64 ng = blockIdx.x; ng < (i64)n * groups; ng += gridDim.x) {
        const T* xs = x + ng * count;
        T* ys = y + ng * count;
        float s = 0.0f;
        for (i64 i = threadIdx.x; i < count; i += blockDim.x) s += ld(xs + i);
        float m = block_sum(s) / (float)count;
        float v = 0.0f;
        for (i64 i = threadIdx.x; i < count; i += blockDim.x) { float d = ld(xs + i) - m; v += d * d; }
        float r = rsqrtf(block_sum(v) / (float)count + eps);
        int g = (int)(ng % groups);
        for (i64 i = threadIdx.x; i < count; i += blockDim.x) {
            int ch = g * cpg + (int)(i / hw);
            float o = (ld(xs + i) - m) * r;
            if (hasWeight) o *= ld(w + ch);
            if (hasBias) o += ld(b + ch);
            st(ys + i, o);
        }
        if (threadIdx.x == 0) { mean[ng] = m; rstd[ng] = r; }
    }
}

template <typename T> __device__ void group_norm_backward_impl(const T* dy, const T* x, const T* w, const float* mean,
                                                               const float* rstd, T* dx, int n, int c, i64 hw, int groups,
                                                               int hasWeight) {
    int cpg = c / groups;
    i64 count = (i64)cpg * hw;
    for (i64 ng = blockIdx.x; ng < (i64)n * groups; ng += gridDim.x) {
        const T* xs = x + ng * count;
        const T* gs = dy + ng * count;
        T* ds = dx + ng * count;
        int g = (int)(ng % groups);
        float m = mean[ng], r = rstd[ng];
        float a1 = 0.0f, a2 = 0.0f;
        for (i64 i = threadIdx.x; i < count; i += blockDim.x) {
            float gw = ld(gs + i) * (hasWeight ? ld(w + g * cpg + (int)(i / hw)) : 1.0f);
            a1 += gw;
            a2 += gw * (ld(xs + i) - m) * r;
        }
        a1 = block_sum(a1) / (float)count;
        a2 = block_sum(a2) / (float)count;
        for (i64 i = threadIdx.x; i < count; i += blockDim.x) {
            float gw = ld(gs + i) * (hasWeight ? ld(w + g * cpg + (int)(i / hw)) : 1.0f);
            float xhat = (ld(xs + i) - m) * r;
            st(ds + i, r * (gw - a1 - xhat * a2));
        }
    }
}

// One block per channel: dweight[c] = Σ dy·x̂, dbias[c] = Σ dy over images and positions.
template <typename T> __device__ void group_norm_params_impl(const T* dy, const T* x, const float* mean, const float* rstd,
                                                             T* dw, T* db, int n, int c, i64 hw, int groups) {
    int cpg = c / groups;
    for (int ch = blockIdx.x; ch < c; ch += gridDim.x) {
        float sw = 0.0f, sb = 0.0f;
        i64 total = (i64)n * hw;
        for (i64 i = threadIdx.x; i < total; i += blockDim.x) {
            i64 img = i / hw, p = i % hw;
            i64 off = (img * c + ch) * hw + p;
            i64 ng = img * groups + ch / cpg;
            float g = ld(dy + off);
            sw += g * (ld(x + off) - mean[ng]) * rstd[ng];
            sb += g;
        }
        sw = block_sum(sw);
        sb = block_sum(sb);
        if (threadIdx.x == 0) { st(dw + ch, sw); st(db + ch, sb); }
    }
}

// One block per row of d elements.
template <typename T> __device__ void layer_norm_impl(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                                                      i64 rows, int d, float eps, int hasWeight, int hasBias) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xs = x + row * d;
        T* ys = y + row * d;
        float s = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) s += ld(xs + i);
        float m = block_sum(s) / (float)d;
        float v = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) { float t = ld(xs + i) - m; v += t * t; }
        float r = rsqrtf(block_sum(v) / (float)d + eps);
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float o = (ld(xs + i) - m) * r;
            if (hasWeight) o *= ld(w + i);
            if (hasBias) o += ld(b + i);
            st(ys + i, o);
        }
        if (threadIdx.x == 0) { mean[row] = m; rstd[row] = r; }
    }
}

template <typename T> __device__ void layer_norm_backward_impl(const T* dy, const T* x, const T* w, const float* mean,
                                                               const float* rstd, T* dx, i64 rows, int d, int hasWeight) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xs = x + row * d;
        const T* gs = dy + row * d;
        T* ds = dx + row * d;
        float m = mean[row], r = rstd[row];
        float a1 = 0.0f, a2 = 0.0f;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float gw = ld(gs + i) * (hasWeight ? ld(w + i) : 1.0f);
            a1 += gw;
            a2 += gw * (ld(xs + i) - m) * r;
        }
        a1 = block_sum(a1) / (float)d;
        a2 = block_sum(a2) / (float)d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float gw = ld(gs + i) * (hasWeight ? ld(w + i) : 1.0f);
            st(ds + i, r * (gw - a1 - (ld(xs + i) - m) * r * a2));
        }
    }
}

// One block per column: dweight[k] = Σ_rows dy·x̂, dbias[k] = Σ_rows dy.
template <typename T> __device__ void layer_norm_params_impl(const T* dy, const T* x, const float* mean, const float* rstd,
                                                             T* dw, T* db, i64 rows, int d) {
    for (int col = blockIdx.x; col < d; col += gridDim.x) {
        float sw = 0.0f, sb = 0.0f;
        for (i64 row = threadIdx.x; row < rows; row += blockDim.x) {
            float g = ld(dy + row * d + col);
            sw += g * (ld(x + row * d + col) - mean[row]) * rstd[row];
            sb += g;
        }
        sw = block_sum(sw);
        sb = block_sum(sb);
        if (threadIdx.x == 0) { st(dw + col, sw); st(db + col, sb); }
    }
}

// One block per row of n elements.
template <typename T> __device__ void softmax_impl(const T* x, T* y, i64 rows, int n) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xs = x + row * n;
        T* ys = y + row * n;
        float m = NEG_INF;
        for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, ld(xs + i));
        m = block_max(m);
        float s = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(ld(xs + i) - m);
        float inv = 1.0f / block_sum(s);
        for (int i = threadIdx.x; i < n; i += blockDim.x) st(ys + i, expf(ld(xs + i) - m) * inv);
    }
}

template <typename T> __device__ void softmax_backward_impl(const T* y, const T* dy, T* dx, i64 rows, int n) {
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* ys = y + row * n;
        const T* gs = dy + row * n;
        T* ds = dx + row * n;
        float dot = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) dot += ld(ys + i) * ld(gs + i);
        dot = block_sum(dot);
        for (int i = threadIdx.x; i < n; i += blockDim.x) st(ds + i, ld(ys + i) * (ld(gs + i) - dot));
    }
}

// ---------------------------------------------------------------- attention
//
// Scores S [heads][rows][nk] (float, already scaled) for query rows
// first ..< first + rows of one batch item. The mask (float, [nq][nk],
// may be null) multiplies probabilities after the softmax; causal limits
// query q to keys 0...q.

struct AttentionRows {
    i64 rows;        // query rows in this chunk
    i64 first;       // index of the chunk's first query row
    int heads;
    int nk;
    int causal;
};

// P (T) = softmax(S) ⊙ mask, one block per (head, row).
template <typename T> __device__ void attention_probs_impl(const float* s, T* p, const float* mask, AttentionRows a) {
    for (i64 hr = blockIdx.x; hr < (i64)a.heads * a.rows; hr += gridDim.x) {
        i64 r = hr % a.rows, q = a.first + r;
        int limit = (a.causal && q + 1 < (i64)a.nk) ? (int)(q + 1) : a.nk;
        const float* ss = s + hr * a.nk;
        T* ps = p + hr * a.nk;
        float m = NEG_INF;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) m = fmaxf(m, ss[j]);
        m = block_max(m);
        float sum = 0.0f;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) sum += expf(ss[j] - m);
        float inv = 1.0f / block_sum(sum);
        for (int j = threadIdx.x; j < a.nk; j += blockDim.x) {
            float v = j < limit ? expf(ss[j] - m) * inv : 0.0f;
            if (mask) v *= mask[q * a.nk + j];
            st(ps + j, v);
        }
    }
}

// Backward, one block per (head, row), given S (float scores, overwritten
// with nothing) and dPm = dO·Vᵀ (float): writes Pm = P ⊙ mask (T) and
// dS = scale · P ⊙ (mask ⊙ dPm − Σ_j P·mask·dPm) (T).
template <typename T> __device__ void attention_probs_backward_impl(const float* s, const float* dpm, const float* mask,
                                                                    T* pm, T* ds, float scale, AttentionRows a) {
    for (i64 hr = blockIdx.x; hr < (i64)a.heads * a.rows; hr += gridDim.x) {
        i64 r = hr % a.rows, q = a.first + r;
        int limit = (a.causal && q + 1 < (i64)a.nk) ? (int)(q + 1) : a.nk;
        const float* ss = s + hr * a.nk;
        const float* gs = dpm + hr * a.nk;
        float m = NEG_INF;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) m = fmaxf(m, ss[j]);
        m = block_max(m);
        float sum = 0.0f;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) sum += expf(ss[j] - m);
        float inv = 1.0f / block_sum(sum);
        float dot = 0.0f;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) {
            float mk = mask ? mask[q * a.nk + j] : 1.0f;
            dot += expf(ss[j] - m) * inv * mk * gs[j];
        }
        dot = block_sum(dot);
        for (int j = threadIdx.x; j < a.nk; j += blockDim.x) {
            float mk = mask ? mask[q * a.nk + j] : 1.0f;
            float p = j < limit ? expf(ss[j] - m) * inv : 0.0f;
            st(pm + hr * a.nk + j, p * mk);
            st(ds + hr * a.nk + j, scale * p * (mk * gs[j] - dot));
        }
    }
}

// ---------------------------------------------------------------- resampling, lookup

template <typename T> __device__ void upsample_impl(const T* x, T* y, i64 planes, int h, int w, int f) {
    i64 oh = (i64)h * f, ow = (i64)w * f;
    GRID_STRIDE(i, planes * oh * ow) {
        i64 ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
        y[i] = x[(p * h + oy / f) * w + ox / f];
    }
}

template <typename T> __device__ void upsample_backward_impl(const T* dy, T* dx, i64 planes, int h, int w, int f) {
    i64 ow = (i64)w * f;
    GRID_STRIDE(i, planes * h * w) {
        i64 x0 = i % w, y0 = (i / w) % h, p = i / ((i64)w * h);
        float acc = 0.0f;
        for (int dy0 = 0; dy0 < f; ++dy0)
            for (int dx0 = 0; dx0 < f; ++dx0)
                acc += ld(dy + (p * h * f + y0 * f + dy0) * ow + x0 * f + dx0);
        st(dx + i, acc);
    }
}

template <typename T> __device__ void embedding_impl(const T* table, const int* ids, T* y, i64 count, i64 d) {
    GRID_STRIDE(i, count * d) y[i] = table[(i64)ids[i / d] * d + i % d];
}

template <typename T> __device__ void embedding_backward_impl(const T* dy, const int* ids, float* acc, i64 count, i64 d) {
    GRID_STRIDE(i, count * d) atomicAdd(acc + (i64)ids[i / d] * d + i % d, ld(dy + i));
}

// ---------------------------------------------------------------- entry points

#define ENTRY(NAME, SUFFIX, T, PARAMS, ARGS) \
    extern "C" __global__ void NAME##_##SUFFIX PARAMS { NAME##_impl<T> ARGS; }
#define FOR_TYPES(NAME, PARAMS_F, PARAMS_H, PARAMS_B, ARGS) \
    ENTRY(NAME, f32, float, PARAMS_F, ARGS) ENTRY(NAME, f16, half_t, PARAMS_H, ARGS) ENTRY(NAME, bf16, bf16_t, PARAMS_B, ARGS)
// PARAMS(T) spelled once per type.
#define TYPED(NAME, P, ARGS) FOR_TYPES(NAME, P(float), P(half_t), P(bf16_t), ARGS)

#define P_TO_FLOAT(T) (const T* x, float* y, i64 n)
TYPED(to_float, P_TO_FLOAT, (x, y, n))
#define P_FROM_FLOAT(T) (const float* x, T* y, i64 n)
TYPED(from_float, P_FROM_FLOAT, (x, y, n))
#define P_GATHER(T) (const T* x, T* y, i64 n, Dims d)
TYPED(gather, P_GATHER, (x, y, n, d))
#define P_COPY_ROWS(T) (const T* x, T* y, i64 outer, i64 rows, i64 inner, i64 srcRows, i64 srcStart, i64 dstRows, i64 dstStart)
TYPED(copy_rows, P_COPY_ROWS, (x, y, outer, rows, inner, srcRows, srcStart, dstRows, dstStart))
#define P_BINARY_SAME(T) (const T* a, const T* b, T* y, i64 n, int op)
TYPED(binary_same, P_BINARY_SAME, (a, b, y, n, op))
#define P_BINARY_BROADCAST(T) (const T* a, const T* b, T* y, i64 n, int op, Dims d)
TYPED(binary_broadcast, P_BINARY_BROADCAST, (a, b, y, n, op, d))
#define P_UNARY(T) (const T* x, T* y, i64 n, int op, float c0, float c1)
TYPED(unary, P_UNARY, (x, y, n, op, c0, c1))
#define P_UNARY_BACKWARD(T) (const T* x, const T* g, T* dx, i64 n, int op, float c0, float c1)
TYPED(unary_backward, P_UNARY_BACKWARD, (x, g, dx, n, op, c0, c1))
#define P_GEGLU(T) (const T* x, T* y, i64 rows, i64 n)
TYPED(geglu, P_GEGLU, (x, y, rows, n))
#define P_GEGLU_BACKWARD(T) (const T* x, const T* dy, T* dx, i64 rows, i64 n)
TYPED(geglu_backward, P_GEGLU_BACKWARD, (x, dy, dx, rows, n))
#define P_SUM(T) (const T* x, T* y, i64 outputs, ReduceDims d)
TYPED(sum_block, P_SUM, (x, y, outputs, d))
TYPED(sum_thread, P_SUM, (x, y, outputs, d))
#define P_MAX_AXIS(T) (const T* x, T* y, i64 outer, i64 n, i64 inner)
TYPED(max_axis, P_MAX_AXIS, (x, y, outer, n, inner))
#define P_ADD_BIAS(T) (T* y, const T* bias, i64 outer, i64 channels, i64 inner)
TYPED(add_bias, P_ADD_BIAS, (y, bias, outer, channels, inner))
#define P_IM2COL(T) (const T* x, T* col, ConvGeometry g, int first, int count)
TYPED(im2col, P_IM2COL, (x, col, g, first, count))
#define P_COL2IM(T) (const T* col, T* dx, ConvGeometry g, int first, int count)
TYPED(col2im, P_COL2IM, (col, dx, g, first, count))
#define P_GROUP_NORM(T) (const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int n, int c, i64 hw, int groups, float eps, int hasWeight, int hasBias)
TYPED(group_norm, P_GROUP_NORM, (x, w, b, y, mean, rstd, n, c, hw, groups, eps, hasWeight, hasBias))
#define P_GROUP_NORM_BACKWARD(T) (const T* dy, const T* x, const T* w, const float* mean, const float* rstd, T* dx, int n, int c, i64 hw, int groups, int hasWeight)
TYPED(group_norm_backward, P_GROUP_NORM_BACKWARD, (dy, x, w, mean, rstd, dx, n, c, hw, groups, hasWeight))
#define P_GROUP_NORM_PARAMS(T) (const T* dy, const T* x, const float* mean, const float* rstd, T* dw, T* db, int n, int c, i64 hw, int groups)
TYPED(group_norm_params, P_GROUP_NORM_PARAMS, (dy, x, mean, rstd, dw, db, n, c, hw, groups))
#define P_LAYER_NORM(T) (const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, i64 rows, int d, float eps, int hasWeight, int hasBias)
TYPED(layer_norm, P_LAYER_NORM, (x, w, b, y, mean, rstd, rows, d, eps, hasWeight, hasBias))
#define P_LAYER_NORM_BACKWARD(T) (const T* dy, const T* x, const T* w, const float* mean, const float* rstd, T* dx, i64 rows, int d, int hasWeight)
TYPED(layer_norm_backward, P_LAYER_NORM_BACKWARD, (dy, x, w, mean, rstd, dx, rows, d, hasWeight))
#define P_LAYER_NORM_PARAMS(T) (const T* dy, const T* x, const float* mean, const float* rstd, T* dw, T* db, i64 rows, int d)
TYPED(layer_norm_params, P_LAYER_NORM_PARAMS, (dy, x, mean, rstd, dw, db, rows, d))
#define P_SOFTMAX(T) (const T* x, T* y, i64 rows, int n)
TYPED(softmax, P_SOFTMAX, (x, y, rows, n))
#define P_SOFTMAX_BACKWARD(T) (const T* y, const T* dy, T* dx, i64 rows, int n)
TYPED(softmax_backward, P_SOFTMAX_BACKWARD, (y, dy, dx, rows, n))
#define P_ATTENTION_PROBS(T) (const float* s, T* p, const float* mask, AttentionRows a)
TYPED(attention_probs, P_ATTENTION_PROBS, (s, p, mask, a))
#define P_ATTENTION_PROBS_BACKWARD(T) (const float* s, const float* dpm, const float* mask, T* pm, T* ds, float scale, AttentionRows a)
TYPED(attention_probs_backward, P_ATTENTION_PROBS_BACKWARD, (s, dpm, mask, pm, ds, scale, a))
#define P_UPSAMPLE(T) (const T* x, T* y, i64 planes, int h, int w, int f)
TYPED(upsample, P_UPSAMPLE, (x, y, planes, h, w, f))
#define P_UPSAMPLE_BACKWARD(T) (const T* dy, T* dx, i64 planes, int h, int w, int f)
TYPED(upsample_backward, P_UPSAMPLE_BACKWARD, (dy, dx, planes, h, w, f))
#define P_EMBEDDING(T) (const T* table, const int* ids, T* y, i64 count, i64 d)
TYPED(embedding, P_EMBEDDING, (table, ids, y, count, d))
#define P_EMBEDDING_BACKWARD(T) (const T* dy, const int* ids, float* acc, i64 count, i64 d)
TYPED(embedding_backward, P_EMBEDDING_BACKWARD, (dy, ids, acc, count, d))
