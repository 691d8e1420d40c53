// Weights read through an image: the packed (OUT_SLICES, K, K, IN_SLICES)
// mat4 array, four RGBA32F texels per mat4 (its columns), laid row by row
// into a WEIGHT_IMAGE_WIDTH-wide 2D image at upload. Every invocation of a
// work group reads the same mat4; on llvmpipe an imageLoad gathers whole
// texels (4 loads per mat4 and lane) where a uniform-block read gathers every
// component (16), and a storage-buffer read loops over lanes and components.

#define WEIGHT_IMAGE_WIDTH 4096      // texels per row; a multiple of 4, so a mat4 never straddles rows

layout(rgba32f, binding = 2) readonly uniform image2D weight_image;

mat4 weight(int index) {
    int texel = 4 * index;
    ivec2 column0 = ivec2(texel % WEIGHT_IMAGE_WIDTH, texel / WEIGHT_IMAGE_WIDTH);
    return mat4(imageLoad(weight_image, column0), imageLoad(weight_image, column0 + ivec2(1, 0)),
                imageLoad(weight_image, column0 + ivec2(2, 0)), imageLoad(weight_image, column0 + ivec2(3, 0)));
}
