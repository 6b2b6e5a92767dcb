/*
 * fastmix: fused mixup kernels behind a plain C ABI.
 *
 * One C99 header; no CUDA header is needed to use it.  Every function may be
 * called from any thread.  Calls on FASTMIX_DEVICE_CUDA are asynchronous with
 * respect to the host: they queue work on `stream` (NULL = the legacy default
 * stream), never allocate memory and never synchronize, so they may be
 * captured in a CUDA graph.  Calls on FASTMIX_DEVICE_CPU run on the calling
 * thread (and an OpenMP team) and ignore `stream`.
 *
 * Pointers whose documentation says "on `device`" must be host memory for
 * FASTMIX_DEVICE_CPU and device-accessible memory (cudaMalloc, managed or
 * mapped) of the current CUDA device for FASTMIX_DEVICE_CUDA.
 *
 * A call that fails writes none of its outputs and returns a status other than
 * FASTMIX_SUCCESS; fastmix_last_error() then says what was wrong.
 */
#ifndef FASTMIX_FASTMIX_H
#define FASTMIX_FASTMIX_H

#include <stddef.h>
#include <stdint.h>

#define FASTMIX_VERSION_MAJOR 0
#define FASTMIX_VERSION_MINOR 1
#define FASTMIX_VERSION_PATCH 0
#define FASTMIX_VERSION \
  (FASTMIX_VERSION_MAJOR * 10000 + FASTMIX_VERSION_MINOR * 100 + FASTMIX_VERSION_PATCH)

#if defined(_WIN32)
#  define FASTMIX_API
#elif defined(FASTMIX_BUILDING_LIBRARY)
#  define FASTMIX_API __attribute__((visibility("default")))
#else
#  define FASTMIX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes.  The values are part of the ABI and never change. */
typedef enum fastmix_status {
  FASTMIX_SUCCESS = 0,
  FASTMIX_ERROR_INVALID_VALUE = 1,      /* a bad argument; the message names it      */
  FASTMIX_ERROR_NOT_SUPPORTED = 2,      /* valid, but this backend cannot do it       */
  FASTMIX_ERROR_NO_DEVICE = 3,          /* FASTMIX_DEVICE_CUDA without a usable GPU   */
  FASTMIX_ERROR_CUDA = 4,               /* the CUDA runtime reported an error         */
  FASTMIX_ERROR_LABEL_OUT_OF_RANGE = 5, /* a label outside [0, classes)              */
  FASTMIX_ERROR_INTERNAL = 6            /* a bug in fastmix                           */
} fastmix_status;

typedef enum fastmix_device { FASTMIX_DEVICE_CPU = 0, FASTMIX_DEVICE_CUDA = 1 } fastmix_device;

/* Storage type of images, logits and targets; arithmetic is always float32. */
typedef enum fastmix_dtype {
  FASTMIX_FLOAT32 = 0,
  FASTMIX_FLOAT16 = 1, /* IEEE binary16 */
  FASTMIX_BFLOAT16 = 2
} fastmix_dtype;

/* How each sample i gets its partner p(i); every pairing is a permutation. */
typedef enum fastmix_pairing {
  FASTMIX_PAIRING_PERMUTATION = 0, /* a random permutation of [0, batch)                     */
  FASTMIX_PAIRING_CYCLE = 1,       /* a random single cycle: p(i) != i, p(p(i)) != i (batch>2) */
  FASTMIX_PAIRING_FLIP = 2,        /* p(i) = batch - 1 - i, as timm pairs; no randomness       */
  FASTMIX_PAIRING_ROLL = 3         /* p(i) = (i - 1) mod batch, as torchvision's roll(1, 0)    */
} fastmix_pairing;

typedef enum fastmix_reduction {
  FASTMIX_REDUCTION_NONE = 0,
  FASTMIX_REDUCTION_MEAN = 1,
  FASTMIX_REDUCTION_SUM = 2
} fastmix_reduction;

/* Every pointer argument must be aligned to its element size (float: 4,
 * int64_t and uint64_t: 8, image/logit/target storage: 4 or 2 bytes);
 * a misaligned one is FASTMIX_ERROR_INVALID_VALUE on every device. */

/* The largest batch (number of samples) any call accepts: 2^32 - 1. */
#define FASTMIX_MAX_BATCH INT64_C(4294967295)

/* A static, human-readable name for `status`; never NULL, also for unknown codes. */
FASTMIX_API const char *fastmix_status_string(fastmix_status status);

/* The detail of the calling thread's last failed call (which parameter, which
 * value, which CUDA error); "" if no call on this thread has failed.  The
 * pointer stays valid until this thread's next fastmix call.  Never NULL. */
FASTMIX_API const char *fastmix_last_error(void);

/* FASTMIX_VERSION of the loaded library: MAJOR*10000 + MINOR*100 + PATCH. */
FASTMIX_API int fastmix_version(void);

/* Number of CUDA devices usable by this library; 0 where there is no driver,
 * no device, or the library was built without CUDA.  Never fails. */
FASTMIX_API int fastmix_cuda_device_count(void);

/* Draws the mixing weights and partners of one batch.
 *   lambdas[i]  ~ Beta(alpha, alpha), folded to max(l, 1 - l) when fold != 0.
 *   partners[i] = p(i) for the chosen pairing (int64, to index tensors).
 * The draw is a pure function of (seed, offset, i, alpha, fold, pairing,
 * batch): the same on every run, every launch geometry and both backends.
 * Advance `offset` (by one is enough) for a fresh, independent draw.
 *   alpha     > 0 and finite.
 *   batch     in [0, FASTMIX_MAX_BATCH]; 0 is a successful no-op.
 *   lambdas   [batch] float, on `device`, written.
 *   partners  [batch] int64, on `device`, written.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_NO_DEVICE, FASTMIX_ERROR_CUDA. */
FASTMIX_API fastmix_status fastmix_sample(fastmix_device device, float alpha, int fold,
                                          fastmix_pairing pairing, uint64_t seed,
                                          uint64_t offset, int64_t batch, float *lambdas,
                                          int64_t *partners, void *stream);

/* Blends a batch with its partners:
 *   out[i][j] = lambdas[i] * x[i][j] + (1 - lambdas[i]) * x[partners[i]][j]
 * in float32, rounded once to `dtype`.
 *   x, out         batch samples of sample_elems elements of `dtype`, sample i
 *                  starting at element i * sample_stride; on `device`.  Any
 *                  alignment.  out == x blends in place (bitwise the same
 *                  result); any other overlap is an error.  Elements between
 *                  samples are never written.
 *   sample_elems   >= 0; sample_stride >= sample_elems.
 *   lambdas        [batch] float on `device`.
 *   partners       [batch] int64 on `device`, each in [0, batch).  The CPU
 *                  backend checks them before writing anything; on CUDA a
 *                  partner out of range makes that sample's output NaN.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_NOT_SUPPORTED (CUDA in
 * place with batch * sizeof(dtype) above the device's shared memory per
 * block), FASTMIX_ERROR_NO_DEVICE, FASTMIX_ERROR_CUDA. */
FASTMIX_API fastmix_status fastmix_blend(fastmix_device device, fastmix_dtype dtype,
                                         const void *x, void *out, int64_t batch,
                                         int64_t sample_elems, int64_t sample_stride,
                                         const float *lambdas, const int64_t *partners,
                                         void *stream);

/* fastmix_sample followed by fastmix_blend, with bitwise the same lambdas,
 * partners and output; on CUDA one kernel launch draws, pairs and blends
 * out of place, and in place (out == x) a draw kernel precedes the blend.
 * lambdas and partners are required outputs. */
FASTMIX_API fastmix_status fastmix_mixup(fastmix_device device, fastmix_dtype dtype,
                                         float alpha, int fold, fastmix_pairing pairing,
                                         uint64_t seed, uint64_t offset, const void *x,
                                         void *out, int64_t batch, int64_t sample_elems,
                                         int64_t sample_stride, float *lambdas,
                                         int64_t *partners, void *stream);

/* The two-term (mixup) cross-entropy with its gradient, in one pass over the
 * logits.  For row i: y1 = labels[i], y2 = labels[partners[i]], lam = lambdas[i],
 *   CE_eps(z, y) = (1 - eps) * (lse(z) - z[y]) + eps * (lse(z) - mean(z))
 *   w1 = lam (0 if y1 == ignore_index), w2 = 1 - lam (0 if y2 == ignore_index)
 *   loss_i = w1 * CE_eps(z, y1) + w2 * CE_eps(z, y2)
 * lambdas and partners both NULL: plain cross-entropy (lam = 1, no 2nd term).
 *   logits          [batch][logits_stride] of `dtype`, on `device`.
 *   labels          [batch] int64 on `device`.
 *   reduction       NONE: loss[batch]; SUM: loss[0] = sum; MEAN: loss[0] =
 *                   sum / sum(w1 + w2) (NaN when that is 0).
 *   label_smoothing eps in [0, 1].
 *   loss            float on `device`, written.
 *   grad_logits     NULL, or [batch][logits_stride] of `dtype` on `device`
 *                   (may equal logits): the gradient of grad_scale * L.
 * A CUDA MEAN or SUM reduces through a workspace (see fastmix_cross_entropy_ws)
 * that this call takes from the device's stream-ordered memory pool
 * (cudaMallocAsync) and frees on `stream` (cudaFreeAsync): no call waits, and
 * both are captured into a CUDA graph; fastmix_cross_entropy_ws with the
 * caller's workspace allocates nothing.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_LABEL_OUT_OF_RANGE (CPU;
 * on CUDA a bad label or partner makes that row NaN), FASTMIX_ERROR_NO_DEVICE,
 * FASTMIX_ERROR_CUDA (also when the workspace cannot be allocated). */
FASTMIX_API fastmix_status fastmix_cross_entropy(
    fastmix_device device, fastmix_dtype dtype, const void *logits, int64_t batch,
    int64_t classes, int64_t logits_stride, const int64_t *labels, const float *lambdas,
    const int64_t *partners, fastmix_reduction reduction, float label_smoothing,
    int64_t ignore_index, float *loss, void *grad_logits, float grad_scale, void *stream);

/* Bytes of device workspace that fastmix_cross_entropy_ws uses to reduce a
 * MEAN or SUM loss over the whole GPU: 8 + 4 * batch rounded up to 8 for
 * FASTMIX_DEVICE_CUDA with MEAN or SUM, 0 otherwise (the CPU needs none).
 * Errors: FASTMIX_ERROR_INVALID_VALUE (device, batch, reduction, NULL bytes). */
FASTMIX_API fastmix_status fastmix_cross_entropy_workspace_size(fastmix_device device,
                                                                int64_t batch,
                                                                fastmix_reduction reduction,
                                                                size_t *bytes);

/* fastmix_cross_entropy with a caller-provided workspace (it allocates nothing).
 * workspace NULL: exactly fastmix_cross_entropy.  With a workspace of at
 * least fastmix_cross_entropy_workspace_size bytes (on `device`, 8-byte
 * aligned, overlapping no other argument), a CUDA MEAN/SUM runs its rows on
 * the whole GPU, keeps the row losses in the workspace and sums them in a
 * fixed order in a second, one-block launch: deterministic, the same bits as
 * fastmix_cross_entropy.  The workspace's contents are scratch, before and
 * after.  The CPU backend uses no workspace and ignores this one (and its
 * checks). */
FASTMIX_API fastmix_status fastmix_cross_entropy_ws(
    fastmix_device device, fastmix_dtype dtype, const void *logits, int64_t batch,
    int64_t classes, int64_t logits_stride, const int64_t *labels, const float *lambdas,
    const int64_t *partners, fastmix_reduction reduction, float label_smoothing,
    int64_t ignore_index, float *loss, void *grad_logits, float grad_scale, void *workspace,
    size_t workspace_bytes, void *stream);

/* The dense mixed, smoothed targets:
 *   targets[i][c] = (1 - eps) * (lam * [c == y1] + (1 - lam) * [c == y2]) + eps / classes
 * (plain one-hot smoothing when lambdas and partners are NULL).
 *   targets  [batch][targets_stride] of `dtype` on `device`, written. */
FASTMIX_API fastmix_status fastmix_soft_targets(fastmix_device device, fastmix_dtype dtype,
                                                const int64_t *labels, const float *lambdas,
                                                const int64_t *partners, int64_t batch,
                                                int64_t classes, float label_smoothing,
                                                void *targets, int64_t targets_stride,
                                                void *stream);

/* ---- The loss for every recipe ---------------------------------------------
 * fastmix_loss is the general form of fastmix_cross_entropy: softmax
 * cross-entropy or per-class binary cross-entropy with logits, targets from
 * labels (one or two per row, mixed by lambdas and partners, never expanded)
 * or dense probability rows, class weights, and the reduced loss over the
 * whole GPU through a caller's workspace.  Shares of row i: s1 = lam,
 * s2 = 1 - lam (plain: s1 = 1, s2 = 0); cw = class_weight (all 1 when NULL);
 * eps = label_smoothing; C = classes.
 *
 * FASTMIX_LOSS_CROSS_ENTROPY with labels (F.cross_entropy with class indices
 * and weight=, per term):
 *   CE(y) = (1 - eps) * cw[y] * (lse(z) - z[y]) + eps / C * sum_c cw[c] * (lse(z) - z[c])
 *   loss_i = s1 * CE(y1) + s2 * CE(y2)   (a term whose label is ignore_index: 0)
 *   MEAN divides the sum by sum_i (s1 * cw[y1] + s2 * cw[y2]) over the terms
 *   that are not ignored (PyTorch's denominator when there is no mixup).
 * FASTMIX_LOSS_CROSS_ENTROPY with targets (F.cross_entropy with probabilities):
 *   t'_c = (1 - eps) * targets[i][c] + eps / C
 *   loss_i = sum_c cw[c] * t'_c * (lse(z) - z[c]);  MEAN divides by batch.
 * FASTMIX_LOSS_BINARY_CROSS_ENTROPY (F.binary_cross_entropy_with_logits, and
 * timm's BinaryCrossEntropy on mixed targets), per class c:
 *   t_c = (1 - eps) * (s1 * [c == y1] + s2 * [c == y2]) + eps / C   (labels)
 *   t_c = (1 - eps) * targets[i][c] + eps / C                      (targets)
 *   t_c = t_c > target_threshold ? 1 : 0     when target_threshold >= 0
 *   (t_c is computed in float32, each operation rounded, on every device, so
 *   the threshold decides the same way everywhere)
 *   l_c = cw[c] * (pw[c] * t_c * softplus(-z_c) + (1 - t_c) * softplus(z_c))
 *   loss_i = sum_c l_c;  MEAN divides the sum by batch * C (PyTorch's mean
 *   over elements); NONE gives the per-row sums.  pw = pos_weight (1 when
 *   NULL).  Every label must be a class (ignore_index is not used).
 * The gradient is that of grad_scale * L with respect to the logits. */
typedef enum fastmix_loss_kind {
  FASTMIX_LOSS_CROSS_ENTROPY = 0,       /* softmax over the classes                  */
  FASTMIX_LOSS_BINARY_CROSS_ENTROPY = 1 /* a sigmoid per class, binary cross-entropy */
} fastmix_loss_kind;

typedef struct fastmix_loss_config {
  fastmix_loss_kind kind;
  fastmix_reduction reduction;
  float label_smoothing;      /* eps in [0, 1]                                          */
  float grad_scale;           /* the gradient is that of grad_scale * L                 */
  int64_t ignore_index;       /* cross-entropy with labels: a label to skip             */
  const float *class_weight;  /* NULL, or [classes] floats on `device`                   */
  const float *pos_weight;    /* binary only: NULL, or [classes] floats on `device`     */
  float target_threshold;     /* binary only: < 0 off; in [0, 1): targets become 0 or 1  */
  const void *targets;        /* NULL: labels give the targets; else [batch][stride]    */
  fastmix_dtype targets_dtype;/*   storage of targets (any of the three)                */
  int64_t targets_stride;     /*   elements between rows of targets, >= classes         */
} fastmix_loss_config;

/* The defaults: cross-entropy, MEAN, no smoothing, grad_scale 1,
 * ignore_index -100 (PyTorch's), no weights, threshold off, labels. */
FASTMIX_API void fastmix_loss_config_init(fastmix_loss_config *config);

/* Bytes of device workspace fastmix_loss needs: 8 + 4 * batch rounded up to 8
 * for FASTMIX_DEVICE_CUDA with MEAN or SUM, 0 otherwise.
 * Errors: FASTMIX_ERROR_INVALID_VALUE (device, batch, config, NULL bytes). */
FASTMIX_API fastmix_status fastmix_loss_workspace_size(fastmix_device device, int64_t batch,
                                                       const fastmix_loss_config *config,
                                                       size_t *bytes);

/* The loss (above) and, when grad_logits is not NULL, its gradient, in one
 * pass over the logits.
 *   logits          [batch][logits_stride] of `dtype`, on `device`.
 *   labels          [batch] int64 on `device` when config->targets is NULL,
 *                   else NULL; lambdas and partners: as fastmix_cross_entropy
 *                   (both NULL without mixup; NULL with targets).
 *   config          not NULL.
 *   loss            float on `device`: loss[batch] for NONE, else loss[0].
 *   grad_logits     NULL, or [batch][logits_stride] of `dtype` on `device`
 *                   (may equal logits).
 *   workspace       at least fastmix_loss_workspace_size bytes on `device`,
 *                   8-byte aligned, overlapping no other argument; NULL when
 *                   that size is 0.  With it a CUDA MEAN/SUM runs its rows on
 *                   the whole GPU and sums their losses in a fixed order:
 *                   deterministic, and graph-capturable.  Scratch, before and
 *                   after.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_LABEL_OUT_OF_RANGE (CPU;
 * on CUDA a bad label or partner makes that row NaN), FASTMIX_ERROR_NO_DEVICE,
 * FASTMIX_ERROR_CUDA. */
FASTMIX_API fastmix_status fastmix_loss(fastmix_device device, fastmix_dtype dtype,
                                        const void *logits, int64_t batch, int64_t classes,
                                        int64_t logits_stride, const int64_t *labels,
                                        const float *lambdas, const int64_t *partners,
                                        const fastmix_loss_config *config, float *loss,
                                        void *grad_logits, void *workspace,
                                        size_t workspace_bytes, void *stream);

/* Seed and offset read from memory when the work runs, so that a
 * CUDA graph captured once draws afresh at every replay:
 *   seed_offset       two uint64 on `device`: seed_offset[0] = seed,
 *                     seed_offset[1] = offset; 8-byte aligned; must not
 *                     overlap lambdas, partners or out.
 *   offset_increment  added (mod 2^64) to seed_offset[1] after the draw, in
 *                     stream order (on CUDA by a one-thread kernel queued on
 *                     `stream` after the main kernel; on the CPU before the
 *                     call returns); 0 leaves seed_offset untouched.  The
 *                     increment is done by every successful call, also with
 *                     batch == 0; a failed call changes nothing.
 * Otherwise the same as fastmix_sample and fastmix_mixup: with the values
 * (seed, offset) found in seed_offset, the lambdas, partners and output are
 * bitwise those of fastmix_sample / fastmix_mixup(seed, offset).  Errors:
 * those of fastmix_sample / fastmix_mixup, and FASTMIX_ERROR_INVALID_VALUE
 * for a NULL, misaligned or overlapping seed_offset. */
FASTMIX_API fastmix_status fastmix_sample_device_seed(fastmix_device device, float alpha,
                                                      int fold, fastmix_pairing pairing,
                                                      uint64_t *seed_offset,
                                                      uint64_t offset_increment, int64_t batch,
                                                      float *lambdas, int64_t *partners,
                                                      void *stream);

FASTMIX_API fastmix_status fastmix_mixup_device_seed(
    fastmix_device device, fastmix_dtype dtype, float alpha, int fold, fastmix_pairing pairing,
    uint64_t *seed_offset, uint64_t offset_increment, const void *x, void *out, int64_t batch,
    int64_t sample_elems, int64_t sample_stride, float *lambdas, int64_t *partners,
    void *stream);

/* ---- CutMix and mixup, chosen per sample ----------------------------------
 *
 * The draw of timm's Mixup, per sample (or per pair, or per batch):
 *   1. With probability `prob` the sample is mixed at all; otherwise its
 *      lambda is 1, its partner is itself and its box is (0, 0, 0, 0).
 *   2. With mixup and CutMix both enabled, it gets CutMix with probability
 *      `switch_prob`, else mixup; with one enabled, that one.
 *   3. Mixup: lambda ~ Beta(mixup_alpha, mixup_alpha), box (-1, -1, -1, -1).
 *      With prob = 1 and mode ELEM these lambdas and partners are bitwise
 *      those of fastmix_sample(mixup_alpha, fold, pairing, seed, offset).
 *   4. CutMix, Beta: lambda ~ Beta(cutmix_alpha, cutmix_alpha); cut sides
 *      ch = floor(H * sqrt(1 - lambda)), cw = floor(W * sqrt(1 - lambda))
 *      (in double, from the float32 lambda);
 *      centre cy uniform in [0, H), cx in [0, W); box rows
 *      [clamp(cy - ch/2), clamp(cy + ch/2)) and columns likewise (ch/2
 *      rounded down, clamp to [0, H] or [0, W]): timm's rand_bbox.
 *      CutMix, min/max: ch uniform in [floor(H*min), floor(H*max)), cw in
 *      [floor(W*min), floor(W*max)), the corner uniform where the box fits:
 *      timm's rand_bbox_minmax (an empty range gives its lower end).
 *      With correct_lam, or always with min/max, lambda = 1 - box area / (H*W)
 *      (computed in double, rounded once to float).
 * A mixup sample's output is the blend of fastmix_blend; a CutMix sample's is
 * its own image with the partner's pixels inside the box, for every channel.
 * The draw is a pure function of (seed, offset, i, config, batch, H, W) and
 * the same on both backends, bitwise. */
typedef enum fastmix_mix_mode {
  FASTMIX_MIX_ELEM = 0,  /* every sample draws its own                                 */
  FASTMIX_MIX_PAIR = 1,  /* i and batch-1-i share one draw; needs FASTMIX_PAIRING_FLIP */
  FASTMIX_MIX_BATCH = 2  /* one draw for the whole batch, as torchvision              */
} fastmix_mix_mode;

typedef enum fastmix_layout {
  FASTMIX_LAYOUT_NCHW = 0, /* each sample [channels][height][width]                  */
  FASTMIX_LAYOUT_NHWC = 1  /* each sample [height][width][channels], channels-last   */
} fastmix_layout;

typedef struct fastmix_mix_config {
  float mixup_alpha;  /* > 0 enables mixup with Beta(mixup_alpha, mixup_alpha); 0: off     */
  float cutmix_alpha; /* > 0 enables CutMix with Beta(cutmix_alpha, cutmix_alpha); 0: off  */
  double cutmix_min;  /* both 0: off.  Else 0 <= min < max <= 1: CutMix with box sides      */
  double cutmix_max;  /*   drawn from [min, max) of H and W (cutmix_alpha is then unused)  */
  float prob;         /* in [0, 1]: probability that a sample is mixed at all              */
  float switch_prob;  /* in [0, 1]: probability of CutMix when both are enabled            */
  fastmix_mix_mode mode;
  fastmix_pairing pairing;
  int correct_lam;    /* != 0: a Beta CutMix lambda becomes 1 - box area / image area      */
  int fold;           /* != 0: both Beta draws folded to max(l, 1 - l)                     */
} fastmix_mix_config;

/* Draws lambdas, partners and boxes for a batch of `height` x `width` images.
 *   config    not NULL; mixup, CutMix or both enabled; finite values in range.
 *   batch     in [0, FASTMIX_MAX_BATCH]; height, width in [1, 2^31 - 1].
 *   lambdas   [batch] float, partners [batch] int64 and boxes [batch][4]
 *             int32 (y0, x0, y1, x1: rows [y0, y1), columns [x0, x1)), on
 *             `device`, written.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_NO_DEVICE, FASTMIX_ERROR_CUDA. */
FASTMIX_API fastmix_status fastmix_cutmix_sample(fastmix_device device,
                                                 const fastmix_mix_config *config, uint64_t seed,
                                                 uint64_t offset, int64_t batch, int64_t height,
                                                 int64_t width, float *lambdas, int64_t *partners,
                                                 int32_t *boxes, void *stream);

/* Applies a draw to a batch of images:
 *   box y0 < 0 (mixup):  out[i] = lambdas[i] * x[i] + (1 - lambdas[i]) * x[p]
 *                        in float32, rounded once (fastmix_blend's result);
 *   else (CutMix):       out[i] = x[i], with x[p]'s pixels at rows [y0, y1)
 *                        and columns [x0, x1) of every channel (a copy of
 *                        the bits), where p = partners[i].
 * So the same draw applies to a second tensor of the batch (a mask, a depth
 * map) of any channel count, as long as height and width match.
 *   x, out         batch images of `dtype`, each dense in `layout`
 *                  (channels * height * width elements), image i starting at
 *                  element i * sample_stride; on `device`; any alignment.
 *                  out == x works in place (bitwise the same result); any
 *                  other overlap is an error.  Elements between images are
 *                  never written.
 *   channels       >= 1; height, width in [1, 2^31 - 1];
 *                  sample_stride >= channels * height * width.
 *   lambdas, partners, boxes  as fastmix_cutmix_sample writes them: partners
 *                  in [0, batch); a box either (-1, -1, -1, -1) or
 *                  0 <= y0 <= y1 <= height, 0 <= x0 <= x1 <= width.  The CPU
 *                  backend checks them before writing anything; on CUDA a
 *                  bad partner or box makes that image's output NaN.
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_NOT_SUPPORTED (CUDA in
 * place with batch * (24 + sizeof(dtype)) bytes above the device's shared
 * memory per block), FASTMIX_ERROR_NO_DEVICE, FASTMIX_ERROR_CUDA. */
FASTMIX_API fastmix_status fastmix_cutmix_apply(fastmix_device device, fastmix_dtype dtype,
                                                fastmix_layout layout, const void *x, void *out,
                                                int64_t batch, int64_t channels, int64_t height,
                                                int64_t width, int64_t sample_stride,
                                                const float *lambdas, const int64_t *partners,
                                                const int32_t *boxes, void *stream);

/* fastmix_cutmix_sample followed by fastmix_cutmix_apply, with bitwise the
 * same outputs; lambdas, partners and boxes are required outputs.  On CUDA a
 * one-thread-per-sample draw kernel, then one pass over the images. */
FASTMIX_API fastmix_status fastmix_cutmix(fastmix_device device, fastmix_dtype dtype,
                                          const fastmix_mix_config *config, uint64_t seed,
                                          uint64_t offset, fastmix_layout layout, const void *x,
                                          void *out, int64_t batch, int64_t channels,
                                          int64_t height, int64_t width, int64_t sample_stride,
                                          float *lambdas, int64_t *partners, int32_t *boxes,
                                          void *stream);

/* The device-seed forms, with the contract of fastmix_sample_device_seed
 * (seed_offset must not overlap lambdas, partners, boxes, x or out). */
FASTMIX_API fastmix_status fastmix_cutmix_sample_device_seed(
    fastmix_device device, const fastmix_mix_config *config, uint64_t *seed_offset,
    uint64_t offset_increment, int64_t batch, int64_t height, int64_t width, float *lambdas,
    int64_t *partners, int32_t *boxes, void *stream);

FASTMIX_API fastmix_status fastmix_cutmix_device_seed(
    fastmix_device device, fastmix_dtype dtype, const fastmix_mix_config *config,
    uint64_t *seed_offset, uint64_t offset_increment, fastmix_layout layout, const void *x,
    void *out, int64_t batch, int64_t channels, int64_t height, int64_t width,
    int64_t sample_stride, float *lambdas, int64_t *partners, int32_t *boxes, void *stream);

/* ---- uint8 images in, normalized and mixed float out, in one pass ----------
 *
 * What decoders give (uint8, NHWC or NCHW) mixed and normalized into the
 * dtype and layout a model takes, reading each byte once and writing each
 * output element once:
 *   v = the mixed pixel, from the uint8 values: for a mixup sample (box
 *       (-1, -1, -1, -1)) v = fl(fl(lam * a) + fl((1 - lam) * b)), a and b
 *       the sample's and the partner's value, as fastmix_blend computes; for
 *       a CutMix sample v = the partner's value inside the box, else the
 *       sample's (an integer, exact);
 *   out = fl(fl(v * scale_c) + shift_c), rounded once to `dtype`, with
 *       scale_c = 1 / (255 std_c) and shift_c = -mean_c / std_c computed in
 *       double and rounded once to float:  out = (v / 255 - mean_c) / std_c.
 * Mixing and normalizing commute (the normalization is affine and the
 * weights sum to 1), so mixing the raw bytes first loses nothing and rounds
 * fewer times.  mean and std are in the 0-1 scale (torchvision's
 * (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).  In place is impossible
 * (uint8 in, another type out): x and out must not overlap.
 *   x           batch uint8 images, dense in `in_layout`, image i at byte
 *               i * x_stride; on `device`.
 *   channels    1 to FASTMIX_MAX_NORM_CHANNELS; height, width 1 to 2^31 - 1.
 *   mean, std   `channels` floats each, in HOST memory, read during the call
 *               (a captured CUDA graph keeps the values); std > 0, all finite.
 *   out         batch images of `dtype`, dense in `out_layout`, image i at
 *               element i * out_stride; on `device`.  Elements between
 *               images are never written.
 *   lambdas, partners, boxes  as for fastmix_cutmix_apply (written by the
 *               fused forms).
 * Errors: FASTMIX_ERROR_INVALID_VALUE, FASTMIX_ERROR_NO_DEVICE, FASTMIX_ERROR_CUDA. */
#define FASTMIX_MAX_NORM_CHANNELS 64

FASTMIX_API fastmix_status fastmix_cutmix_apply_u8(
    fastmix_device device, fastmix_layout in_layout, const uint8_t *x, int64_t batch,
    int64_t channels, int64_t height, int64_t width, int64_t x_stride, const float *mean,
    const float *std, fastmix_dtype dtype, fastmix_layout out_layout, void *out,
    int64_t out_stride, const float *lambdas, const int64_t *partners, const int32_t *boxes,
    void *stream);

/* fastmix_cutmix_sample, then fastmix_cutmix_apply_u8 with that draw. */
FASTMIX_API fastmix_status fastmix_cutmix_u8(
    fastmix_device device, const fastmix_mix_config *config, uint64_t seed, uint64_t offset,
    fastmix_layout in_layout, const uint8_t *x, int64_t batch, int64_t channels, int64_t height,
    int64_t width, int64_t x_stride, const float *mean, const float *std, fastmix_dtype dtype,
    fastmix_layout out_layout, void *out, int64_t out_stride, float *lambdas, int64_t *partners,
    int32_t *boxes, void *stream);

FASTMIX_API fastmix_status fastmix_cutmix_u8_device_seed(
    fastmix_device device, const fastmix_mix_config *config, uint64_t *seed_offset,
    uint64_t offset_increment, fastmix_layout in_layout, const uint8_t *x, int64_t batch,
    int64_t channels, int64_t height, int64_t width, int64_t x_stride, const float *mean,
    const float *std, fastmix_dtype dtype, fastmix_layout out_layout, void *out,
    int64_t out_stride, float *lambdas, int64_t *partners, int32_t *boxes, void *stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FASTMIX_FASTMIX_H */
